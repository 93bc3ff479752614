"""Runs vLLM's offline engine (`LLM.generate`, `LLM.chat`) on the steps of a JSON spec and writes what it answered.

Usage: PYTHON offline_engine.py SPEC.json RESULT.json, with PYTHON from the vLLM environment. Run by
tests/test_vllm_serving.py; it asserts nothing itself. The spec lists models; each model has steps:
- {"kind": "generate", "requests": [{"prompt": str, "images": [png paths], "m": int | null}, ...]}: one
  `LLM.generate` call on the whole list (one batch, possibly mixed budgets);
- {"kind": "chat", "requests": [{"messages": [...], "images": [png paths], "m": int | null}]}: `LLM.chat`, images
  as PIL images in the user turn;
- {"kind": "invalid", "requests": [one request]}: a generate call expected to be refused; the error is recorded.
Every answer records the prompt token ids and the greedy output token ids.
"""

from __future__ import annotations

import gc
import json
import sys
import time

from PIL import Image


def _kwargs(request: dict) -> dict:
    return {} if request.get("m") is None else {"mm_processor_kwargs": {"num_visual_tokens": request["m"]}}


def _prompt(request: dict) -> dict:
    images = [Image.open(path).convert("RGB") for path in request["images"]]
    prompt = {"prompt": request["prompt"], **_kwargs(request)}
    if images:
        prompt["multi_modal_data"] = {"image": images if len(images) > 1 else images[0]}
    return prompt


def _answer(output) -> dict:
    return {"prompt_token_ids": list(output.prompt_token_ids), "output_token_ids": list(output.outputs[0].token_ids)}


def _chat_messages(request: dict) -> list[dict]:
    images = [Image.open(path).convert("RGB") for path in request["images"]]
    messages = json.loads(json.dumps(request["messages"]))
    user = next(message for message in messages if message["role"] == "user")
    user["content"] = [{"type": "image_pil", "image_pil": image} for image in images] + user["content"]
    return messages


def run_model(model: dict, sampling) -> dict:
    from vllm import LLM

    start = time.perf_counter()
    llm = LLM(model=model["path"], dtype="float32", enforce_eager=True, max_model_len=model.get("max_model_len", 512), seed=0)
    started = time.perf_counter() - start
    results = []
    for step in model["steps"]:
        if step["kind"] == "generate":
            outputs = llm.generate([_prompt(request) for request in step["requests"]], sampling, use_tqdm=False)
            results.append({"kind": "generate", "answers": [_answer(output) for output in outputs]})
        elif step["kind"] == "chat":
            answers = []
            for request in step["requests"]:
                output = llm.chat(_chat_messages(request), sampling, use_tqdm=False, **_kwargs(request))
                answers.append(_answer(output[0]))
            results.append({"kind": "chat", "answers": answers})
        elif step["kind"] == "invalid":
            try:
                llm.generate([_prompt(step["requests"][0])], sampling, use_tqdm=False)
                results.append({"kind": "invalid", "error": None})
            except Exception as error:  # recorded for the test to judge: its type and message
                results.append({"kind": "invalid", "error": f"{type(error).__name__}: {error}"})
        else:
            raise ValueError(f"unknown step kind {step['kind']!r}")
    del llm
    gc.collect()
    return {"engine_start_s": started, "steps": results}


def main(spec_path: str, result_path: str) -> None:
    from vllm import SamplingParams

    spec = json.loads(open(spec_path).read())
    sampling = SamplingParams(temperature=0.0, max_tokens=spec["max_tokens"])
    results = {model["name"]: run_model(model, sampling) for model in spec["models"]}
    with open(result_path, "w") as handle:
        json.dump(results, handle)


if __name__ == "__main__":
    main(*sys.argv[1:3])
