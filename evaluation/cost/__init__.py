"""Cost measurement behind `mqt-llava flops` and `mqt-llava bench`.

- `flop_counting`: forward FLOPs per part (vision tower, projector, language-model prefill, one decode step), counted
  with `torch.utils.flop_counter.FlopCounterMode`, on fake tensors for full-size models.
- `peer`: the LLaVA-1.5-style model (`LlavaForConditionalGeneration`, MLP projector, one token per patch) built on
  the same vision tower and language model, the peer every comparison is made against.
- `bench_setup`: the benchmark model sizes and their inputs; `timing`: wall-clock, CPU-time, peak-memory and KV-cache
  probes; `bench_report`: the ratios the benchmark reports and its tables; `kv_cache`: the cache of a forward
  call under the installed transformers' name for it.
- `options`: token-budget options shared by both commands; `plots`: the figures next to `flops.json` and `bench.json`.
"""
