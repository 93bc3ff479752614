"""Serving MQT-LLaVA with vLLM, the token budget chosen per request.

`pip install "mqt-llava[vllm]"` registers `register` (in `plugin`) under vLLM's `vllm.general_plugins` entry point,
so every vLLM process (the API server, the engine core, each worker) knows MQT-LLaVA folders:

- `plugin`: the idempotent registration hook (transformers Auto classes, vLLM's model registry);
- `model`: the vLLM model: vLLM's own vision tower and language model around this package's query transformer;
- `processing`: the multimodal processor, its processing info and its profiling inputs (`num_visual_tokens` per
  request through `mm_processor_kwargs`);
- `weights`: the mapping from a saved folder's tensor names to the vLLM model's;
- `server` and `client`: starting an OpenAI-compatible server on this machine and loading it with concurrent
  requests (`mqt-llava bench --engine vllm`).

Nothing here imports vLLM at package import time: `plugin`, `model` and `processing` are only imported by vLLM
itself, in an environment that has it (docs/serving.md).
"""
