"""MQT-LLaVA served by vLLM (the plugin in `serving/`), checked against transformers in the real engine.

One offline-engine run (both models, every step in one process) and one OpenAI-compatible server run on
127.0.0.1 serve the whole module; each runs in the vLLM environment's own interpreter (tests/vllm_env.py). The
references come from transformers' `generate` in this environment. Models: the shipped demo model (Llama, CLIP-style
tower, M = 64) and a tiny random Qwen2-based model (M = 16) whose generation config fixes a default budget.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import REPO_ROOT, run_isolated
from vllm_env import vllm_env, vllm_python

from mqt_llava.evaluation.shapes_vqa import render_scene, sample_scene
from mqt_llava.modeling_mqt_llava import MqtLlavaForConditionalGeneration
from mqt_llava.processing.processing_mqt_llava import MqtLlavaProcessor
from mqt_llava.serving.client import ServerError, chat, chat_body, run_load
from mqt_llava.serving.server import ServerSettings, VllmServer
from mqt_llava.tools.testing import make_image, save_tiny_model

DEMO = REPO_ROOT / "evaluation" / "assets" / "mqt-llava-tiny"
MAX_TOKENS = 8
QUESTIONS = ["what color is the background ?", "how many shapes are there ?", "is there a red circle ?"]
# a tiny Qwen2 language model whose heads are 32 wide (vLLM's CPU attention kernels take 32 and up)
QWEN2_TEXT = {"model_type": "qwen2", "hidden_size": 128, "intermediate_size": 256, "num_attention_heads": 4,
              "num_key_value_heads": 2, "max_position_embeddings": 512}


def budgets(num_queries: int) -> list[int]:
    return [1, num_queries // 4, num_queries]


class Reference:
    """A model folder, its processor and model under transformers, and the images and prompts of the checks."""

    def __init__(self, name: str, folder: Path, images: list[Path]):
        self.name, self.folder, self.images = name, folder, images
        self.processor = MqtLlavaProcessor.from_pretrained(folder, trust_remote_code=True)
        self.model = MqtLlavaForConditionalGeneration.from_pretrained(folder, dtype=torch.float32).eval()
        self.num_queries = self.model.config.num_queries
        self.eos = self.processor.tokenizer.eos_token_id

    def messages(self, question: str, num_images: int) -> list[dict]:
        """One user turn: the images, separated by a word (two image runs must not touch), then the question."""
        content = []
        for index in range(num_images):
            content += [{"type": "text", "text": "and "}] if index else []
            content.append({"type": "image"})
        return [{"role": "user", "content": content + [{"type": "text", "text": question}]}]

    def prompt(self, question: str, num_images: int) -> str:
        """The chat-template prompt with `<image>` placeholders, BOS left to the tokenizer (as vLLM tokenizes)."""
        text = self.processor.apply_chat_template(self.messages(question, num_images), add_generation_prompt=True)
        return text.removeprefix(self.processor.tokenizer.bos_token)

    def generate(self, question: str, image_paths: list[Path], m: int) -> dict:
        """transformers' greedy answer: the expanded prompt ids and the new ids up to the first EOS."""
        from PIL import Image

        images = [Image.open(path).convert("RGB") for path in image_paths]
        inputs = self.processor(images=images, text=self.prompt(question, len(images)), num_visual_tokens=m, return_tensors="pt")
        with torch.no_grad():
            out = self.model.generate(**inputs, num_visual_tokens=m, max_new_tokens=MAX_TOKENS, do_sample=False)
        return {"prompt_token_ids": inputs["input_ids"][0].tolist(), "output_token_ids": self.until_eos(out[0, inputs["input_ids"].shape[1] :].tolist())}

    def until_eos(self, ids: list[int]) -> list[int]:
        return ids[: ids.index(self.eos)] if self.eos in ids else ids

    def request(self, question_index: int, image_indices: list[int], m: int | None) -> dict:
        return {
            "prompt": self.prompt(QUESTIONS[question_index], len(image_indices)),
            "images": [str(self.images[i]) for i in image_indices],
            "m": m,
            "question": question_index,
            "image_indices": image_indices,
        }


def _write_images(folder: Path, size: int, scenes: bool) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for seed in range(3):
        image = render_scene(sample_scene(np.random.default_rng(seed))) if scenes else make_image(seed, size)
        paths.append(folder / f"image{seed}.png")
        image.save(paths[-1])
    return paths


@pytest.fixture(scope="module")
def references(tmp_path_factory) -> dict[str, Reference]:
    """The two models under transformers. The Qwen2 folder saves `generation_config.num_visual_tokens` = M/4."""
    root = tmp_path_factory.mktemp("vllm_models")
    qwen_folder = save_tiny_model(root / "mqt-llava-qwen2", seed=1, text_config=QWEN2_TEXT)
    qwen = MqtLlavaForConditionalGeneration.from_pretrained(qwen_folder)
    qwen.generation_config.num_visual_tokens = qwen.config.num_queries // 4
    qwen.save_pretrained(qwen_folder)
    return {
        "demo": Reference("demo", DEMO, _write_images(root / "demo_images", 64, scenes=True)),
        "qwen2": Reference("qwen2", qwen_folder, _write_images(root / "qwen_images", 32, scenes=False)),
    }


def _steps(ref: Reference) -> list[dict]:
    """The offline steps of one model: a mixed batch, two refused budgets, a uniform batch, a chat."""
    mixed = [ref.request(q, [q], m) for q in range(2) for m in budgets(ref.num_queries)]
    mixed += [ref.request(2, [0, 1], ref.num_queries // 4), ref.request(0, [0], None)]
    invalid = [{"kind": "invalid", "requests": [ref.request(0, [0], bad)]} for bad in (0, ref.num_queries + 1)]
    uniform = [ref.request(q, [q], ref.num_queries // 4) for q in range(2)]
    chat_request = {"messages": ref.messages(QUESTIONS[1], 0), "images": [str(ref.images[1])], "m": 1,
                    "question": 1, "image_indices": [1]}
    return [{"kind": "generate", "requests": mixed}, *invalid, {"kind": "generate", "requests": uniform},
            {"kind": "chat", "requests": [chat_request]}]


@pytest.fixture(scope="module")
def offline(references, tmp_path_factory) -> dict:
    """The offline engine's answers to `_steps` of each model (one interpreter, one engine per model)."""
    python = vllm_python()
    tmp = tmp_path_factory.mktemp("vllm_offline")
    spec = {"max_tokens": MAX_TOKENS, "models": [
        {"name": name, "path": str(ref.folder), "steps": _steps(ref)} for name, ref in references.items()]}
    (tmp / "spec.json").write_text(json.dumps(spec))
    script = REPO_ROOT / "tests" / "vllm_checks" / "offline_engine.py"
    completed = subprocess.run([python, str(script), str(tmp / "spec.json"), str(tmp / "result.json")], cwd=tmp,
                               env=vllm_env(tmp), capture_output=True, text=True, timeout=900)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-8000:]
    return {"spec": spec, "result": json.loads((tmp / "result.json").read_text())}


def _expected(ref: Reference, request: dict, m: int | None) -> dict:
    return ref.generate(QUESTIONS[request["question"]], [ref.images[i] for i in request["image_indices"]], m)


def _default_budget(ref: Reference) -> int:
    return ref.model.generation_config.num_visual_tokens or ref.num_queries


@pytest.mark.parametrize("name", ["demo", "qwen2"])
def test_offline_greedy_outputs_equal_transformers(references, offline, name):
    """Protects exactness: in one mixed-budget batch (m = 1, M/4, M, a two-image prompt, and a request without a
    budget), every vLLM prompt equals the transformers processor's ids (text + m per image) and every greedy answer
    equals transformers' `generate`; a request without a budget gets the folder's default (the saved
    generation-config budget for the Qwen2 folder, M for the demo)."""
    ref = references[name]
    requests = next(s for s in offline["spec"]["models"] if s["name"] == name)["steps"][0]["requests"]
    answers = offline["result"][name]["steps"][0]["answers"]
    for request, answer in zip(requests, answers, strict=True):
        m = request["m"] if request["m"] is not None else _default_budget(ref)
        expected = _expected(ref, request, m)
        text_tokens = len(expected["prompt_token_ids"]) - m * len(request["image_indices"])
        assert len(answer["prompt_token_ids"]) == text_tokens + m * len(request["image_indices"])
        assert answer["prompt_token_ids"] == expected["prompt_token_ids"], (name, request["m"])
        assert ref.until_eos(answer["output_token_ids"]) == expected["output_token_ids"], (name, request["m"])


@pytest.mark.parametrize("name", ["demo", "qwen2"])
def test_offline_refuses_bad_budgets_and_keeps_serving(references, offline, name):
    """Protects the engine against bad input: m = 0 and m = M + 1 are refused with the valid range named, and the
    same engine then answers a uniform batch and an `LLM.chat` request exactly as transformers does."""
    ref = references[name]
    steps = offline["result"][name]["steps"]
    for step in steps[1:3]:
        assert step["error"] is not None and f"1..{ref.num_queries}" in step["error"], step
    spec_steps = next(s for s in offline["spec"]["models"] if s["name"] == name)["steps"]
    for step_index in (3, 4):
        for request, answer in zip(spec_steps[step_index]["requests"], steps[step_index]["answers"], strict=True):
            expected = _expected(ref, request, request["m"])
            assert answer["prompt_token_ids"] == expected["prompt_token_ids"]
            assert ref.until_eos(answer["output_token_ids"]) == expected["output_token_ids"]


def test_openai_server_budget_per_request(references, tmp_path):
    """Protects serving over HTTP: a server on 127.0.0.1 takes `mm_processor_kwargs` per request, answers exactly
    as transformers at m = 1, M/4 and M with text + m prompt tokens, applies the folder's default without it,
    refuses a bad budget with HTTP 400 naming the range and keeps serving, answers concurrent mixed-budget requests,
    and stops by its process id."""
    ref = references["demo"]
    from PIL import Image

    image = Image.open(ref.images[0]).convert("RGB")
    settings = ServerSettings(model=ref.folder, python=vllm_python(), max_model_len=512, env=vllm_env(tmp_path))
    server = VllmServer(settings, tmp_path / "server.log")
    with server:
        model_name = server.get_json("/v1/models")["data"][0]["id"]
        for m in [*budgets(ref.num_queries), None]:
            body = chat_body(model_name, [image], QUESTIONS[0], m, MAX_TOKENS)
            answer = chat(server.url, {**body, "return_token_ids": True})
            expected = ref.generate(QUESTIONS[0], [ref.images[0]], m or _default_budget(ref))
            assert answer["usage"]["prompt_tokens"] == len(expected["prompt_token_ids"])
            assert answer["prompt_token_ids"] == expected["prompt_token_ids"]
            assert ref.until_eos(answer["choices"][0]["token_ids"]) == expected["output_token_ids"]
        for bad in (0, ref.num_queries + 1, "four"):
            with pytest.raises(ServerError) as refused:
                chat(server.url, chat_body(model_name, [image], QUESTIONS[0], bad, MAX_TOKENS))
            assert refused.value.status == 400 and f"1..{ref.num_queries}" in refused.value.message
        mixed = [chat_body(model_name, [image], QUESTIONS[0], m, MAX_TOKENS) for m in budgets(ref.num_queries) * 2]
        timings, _ = run_load(server.url, mixed, concurrency=6)
        text_tokens = len(ref.generate(QUESTIONS[0], [ref.images[0]], 1)["prompt_token_ids"]) - 1
        assert [t.prompt_tokens for t in timings] == [text_tokens + m for m in budgets(ref.num_queries) * 2]
        assert all(0 < t.first_token_s <= t.latency_s for t in timings)
        pid = server.process.pid
    assert server.process.poll() is not None, f"server pid {pid} still running"


def test_shipped_folder_remote_code_under_vllm_transformers(references, tmp_path):
    """Protects Hub users on the transformers version vLLM pins: the shipped folder's own remote code (this package
    hidden) loads with `trust_remote_code=True` in the vLLM environment and answers exactly as here, at m = 1, M/4
    and M."""
    ref = references["demo"]
    question, image = QUESTIONS[0], ref.images[0]
    script = f"""
        import json, torch, transformers
        from PIL import Image
        from transformers import AutoModelForImageTextToText, AutoProcessor
        folder = {str(ref.folder)!r}
        model = AutoModelForImageTextToText.from_pretrained(folder, trust_remote_code=True, dtype=torch.float32).eval()
        processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
        results = {{"transformers": transformers.__version__, "answers": {{}}}}
        for m in {budgets(ref.num_queries)!r}:
            inputs = processor(images=[Image.open({str(image)!r}).convert("RGB")], text={ref.prompt(question, 1)!r},
                               num_visual_tokens=m, return_tensors="pt")
            out = model.generate(**inputs, max_new_tokens={MAX_TOKENS}, do_sample=False)
            results["answers"][str(m)] = {{"prompt": inputs["input_ids"][0].tolist(),
                                          "new": out[0, inputs["input_ids"].shape[1]:].tolist()}}
        json.dump(results, open(RESULT_PATH, "w"))
    """
    result = run_isolated(script, tmp_path, python=vllm_python())
    import transformers

    assert result["transformers"] != transformers.__version__, "both environments run the same transformers"
    for m in budgets(ref.num_queries):
        expected = ref.generate(question, [image], m)
        answer = result["answers"][str(m)]
        assert answer["prompt"] == expected["prompt_token_ids"]
        assert ref.until_eos(answer["new"]) == expected["output_token_ids"]


def test_bench_engine_vllm_measures_both_servers(tmp_path):
    """Protects `mqt-llava bench --engine vllm`: one run starts a server for the MQT-LLaVA folder and one for its
    LLaVA peer (vLLM's built-in model, same tower and language model, full grid), measures each budget and the peer,
    and writes the JSON report, the Markdown table and the figure; prompts hold text + m tokens (the peer: text +
    its grid), and the KV-cache blocks per request follow the server's block size."""
    out = tmp_path / "bench"
    completed = subprocess.run(
        ["mqt-llava", "bench", "--engine", "vllm", "--vllm-python", vllm_python(), "--requests", "3",
         "--concurrency", "2", "--warmup-requests", "1", "--new-tokens", "4", "--num-visual-tokens", "1,16",
         "--out", str(out)],
        cwd=tmp_path, env=vllm_env(tmp_path), capture_output=True, text=True, timeout=900,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-6000:]
    report = json.loads((out / "bench_vllm.json").read_text())
    assert (out / "bench_vllm.png").stat().st_size > 0 and "LLaVA (vLLM built-in)" in (out / "bench_vllm.md").read_text()
    cases = {case["name"]: case for case in report["cases"]}
    assert set(cases) == {"mqt-m1", "mqt-m16", "llava"}
    text_tokens = cases["mqt-m1"]["prompt_tokens"] - 1
    assert cases["mqt-m16"]["prompt_tokens"] == text_tokens + 16
    assert cases["llava"]["num_visual_tokens"] == 64  # the demo tower's 8 x 8 grid
    for case in cases.values():
        block = report["kv_cache"]["llava" if case["kind"] == "llava" else "mqt"]["block_size"]
        assert case["output_tokens"] == 4 and case["requests"] == 3 and case["requests_per_s"] > 0
        assert case["kv_blocks_per_request"] == -(-(case["prompt_tokens"] + 4) // block)


def test_bench_engine_vllm_refuses_bad_counts(tmp_path):
    """Protects the bench's input checks (no vLLM needed): a non-positive request count is refused with the
    option named, before any server starts."""
    completed = subprocess.run(
        ["mqt-llava", "bench", "--engine", "vllm", "--requests", "0", "--out", str(tmp_path / "bench")],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode == 2 and "--requests 0" in completed.stderr
    assert not (tmp_path / "bench" / "bench_vllm.json").exists()
