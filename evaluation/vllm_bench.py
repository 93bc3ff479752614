"""`mqt-llava bench --engine vllm`: serving throughput of one MQT-LLaVA folder at several token budgets, against
vLLM's built-in LLaVA on the same vision tower and language model at its full grid, measured in one run.

For each case a vLLM OpenAI-compatible server starts on 127.0.0.1 (with the interpreter given by `--vllm-python`),
answers `--warmup` requests that are not counted, then `--requests` streamed chat requests, at most
`--concurrency` in flight, each with its own synthetic image, a fixed question and exactly `--new-tokens` greedy
output tokens (EOS ignored). The MQT-LLaVA server serves every budget (one request set per m, the budget in
`mm_processor_kwargs`); the LLaVA peer gets the same images and question. Reported per case: requests/s and output
tokens/s over the set's wall time, time to first token (median and 90th percentile, on this machine's clock),
prompt tokens, and KV-cache blocks per request (ceil((prompt + output tokens) / block size), the blocks a request
holds at its end) with how many such requests the server's KV cache holds at once. Writes
`OUT/bench_vllm.json`, `OUT/bench_vllm.png` and `OUT/bench_vllm.md`.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import statistics
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

from mqt_llava.evaluation.cost.options import budgets_for, markdown_table
from mqt_llava.evaluation.cost.vllm_peer import write_llava_peer_folder
from mqt_llava.modeling_mqt_llava import MqtLlavaConfig
from mqt_llava.serving.client import chat_body, run_load
from mqt_llava.serving.server import ServerSettings, VllmServer
from mqt_llava.tools.testing import make_image

__all__ = ["add_vllm_arguments", "run_vllm_benchmark", "run"]

logger = logging.getLogger(__name__)

DEFAULT_MODEL = Path(__file__).resolve().parent / "assets" / "mqt-llava-tiny"
QUESTION = "what color is the background ?"


def add_vllm_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `--engine vllm` (the shared ones, `--num-visual-tokens`, `--new-tokens`, `--out`, come from bench)."""
    group = parser.add_argument_group("--engine vllm")
    group.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="MQT-LLaVA folder (default: the demo model).")
    group.add_argument("--vllm-python", default=sys.executable, help="Interpreter of an environment with vLLM.")
    group.add_argument("--requests", type=int, default=32, help="Measured requests per case.")
    group.add_argument("--concurrency", type=int, default=8, help="Requests in flight at once.")
    group.add_argument("--warmup-requests", type=int, default=4, help="Requests sent first and not counted.")
    group.add_argument("--dtype", default="float32", help="vLLM --dtype (bfloat16 on GPUs).")
    group.add_argument("--max-model-len", type=int, help="vLLM --max-model-len (default: the model's).")
    group.add_argument(
        "--vllm-arg", action="append", default=[], help="Extra server argument, repeatable (e.g. --vllm-arg=--tensor-parallel-size=2)."
    )


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1)]


def _cache_config(server: VllmServer) -> dict[str, int]:
    """Block size and number of KV-cache blocks, from the server's Prometheus `cache_config_info` metric."""
    with urllib.request.urlopen(f"{server.url}/metrics", timeout=30) as response:
        text = response.read().decode()
    for line in text.splitlines():
        if line.startswith("vllm:cache_config_info{"):
            labels = dict(item.split("=", 1) for item in line[line.index("{") + 1 : line.rindex("}")].split(","))
            labels = {key: value.strip('"') for key, value in labels.items()}
            blocks = labels.get("num_gpu_blocks") or labels.get("num_cpu_blocks")
            return {"block_size": int(labels["block_size"]), "num_blocks": int(blocks)}
    raise RuntimeError("the server's /metrics has no vllm:cache_config_info line")


def _measure(server: VllmServer, bodies: list[dict], warmup: list[dict], concurrency: int, cache: dict) -> dict[str, Any]:
    run_load(server.url, warmup, concurrency)
    timings, wall = run_load(server.url, bodies, concurrency)
    blocks = [math.ceil((t.prompt_tokens + t.completion_tokens) / cache["block_size"]) for t in timings]
    ttft = [t.first_token_s for t in timings]
    return {
        "requests": len(timings),
        "wall_s": wall,
        "requests_per_s": len(timings) / wall,
        "output_tokens_per_s": sum(t.completion_tokens for t in timings) / wall,
        "ttft_median_s": statistics.median(ttft),
        "ttft_p90_s": _percentile(ttft, 0.9),
        "prompt_tokens": statistics.median(t.prompt_tokens for t in timings),
        "output_tokens": statistics.median(t.completion_tokens for t in timings),
        "kv_blocks_per_request": statistics.median(blocks),
        "requests_the_kv_cache_holds": cache["num_blocks"] // max(blocks),
    }


def _bodies(model_name: str, count: int, first_seed: int, image_size: int, m: int | None, new_tokens: int) -> list[dict]:
    bodies = []
    for seed in range(first_seed, first_seed + count):
        body = chat_body(model_name, [make_image(seed, image_size)], QUESTION, m, new_tokens)
        bodies.append({**body, "min_tokens": new_tokens, "ignore_eos": True})
    return bodies


def run_vllm_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    """Runs both servers and returns the `bench_vllm.json` document."""
    config = MqtLlavaConfig.from_pretrained(args.model)
    budgets = budgets_for(config.num_queries, args.num_visual_tokens)
    size = config.vision_config.image_size
    env = {"VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1")}

    def settings(folder: Path, **extra: Any) -> ServerSettings:
        return ServerSettings(
            model=folder, python=args.vllm_python, dtype=args.dtype, max_model_len=args.max_model_len,
            extra_args=list(args.vllm_arg), env=env, **extra,
        )

    cases, caches = [], {}
    with tempfile.TemporaryDirectory(prefix="mqt-llava-bench-") as scratch:
        scratch = Path(scratch)
        peer_folder = write_llava_peer_folder(args.model, scratch / f"llava-peer-of-{args.model.name}")
        with VllmServer(settings(args.model), args.out / "server_mqt_llava.log") as server:
            caches["mqt"] = cache = _cache_config(server)
            for m in budgets:
                logger.info("MQT-LLaVA, m = %d: %d requests", m, args.requests)
                bodies = _bodies(args.model.name, args.requests, 1000, size, m, args.new_tokens)
                warmup = _bodies(args.model.name, args.warmup_requests, 0, size, m, args.new_tokens)
                cases.append({"name": f"mqt-m{m}", "kind": "mqt", "num_visual_tokens": m,
                              **_measure(server, bodies, warmup, args.concurrency, cache)})
        with VllmServer(settings(peer_folder, trust_request_mm_kwargs=False), args.out / "server_llava.log") as server:
            caches["llava"] = cache = _cache_config(server)
            logger.info("LLaVA peer: %d requests", args.requests)
            bodies = _bodies(peer_folder.name, args.requests, 1000, size, None, args.new_tokens)
            warmup = _bodies(peer_folder.name, args.warmup_requests, 0, size, None, args.new_tokens)
            measured = _measure(server, bodies, warmup, args.concurrency, cache)
            text_tokens = cases[0]["prompt_tokens"] - cases[0]["num_visual_tokens"]
            cases.append({"name": "llava", "kind": "llava", "num_visual_tokens": int(measured["prompt_tokens"] - text_tokens),
                          **measured})
    return {
        "model": str(args.model),
        "num_queries": config.num_queries,
        "language_model": config.text_config.model_type,
        "vision_tower": config.vision_config.model_type,
        "dtype": args.dtype,
        "requests": args.requests,
        "concurrency": args.concurrency,
        "new_tokens": args.new_tokens,
        "kv_cache": caches,
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "processor": platform.processor()},
        "cases": cases,
    }


def format_table(report: dict[str, Any]) -> str:
    """The Markdown table of a report."""
    header = ["case", "visual tokens", "prompt tokens", "requests/s", "output tokens/s", "TTFT median (s)",
              "TTFT p90 (s)", "KV blocks per request", "requests the KV cache holds"]
    rows = [
        [
            "LLaVA (vLLM built-in)" if case["kind"] == "llava" else f"MQT-LLaVA m = {case['num_visual_tokens']}",
            str(case["num_visual_tokens"]), f"{case['prompt_tokens']:.0f}", f"{case['requests_per_s']:.2f}",
            f"{case['output_tokens_per_s']:.1f}", f"{case['ttft_median_s']:.3f}", f"{case['ttft_p90_s']:.3f}",
            f"{case['kv_blocks_per_request']:.0f}", str(case["requests_the_kv_cache_holds"]),
        ]
        for case in report["cases"]
    ]
    return "\n".join(markdown_table(header, rows))


def plot(report: dict[str, Any], path: Path) -> None:
    """Requests/s and median time to first token against m; the LLaVA peer as a marker at its token count."""
    from matplotlib.figure import Figure

    mqt = [case for case in report["cases"] if case["kind"] == "mqt"]
    llava = [case for case in report["cases"] if case["kind"] == "llava"]
    fig = Figure(figsize=(9.6, 3.8))
    left, right = fig.subplots(1, 2)
    for ax, key, label in ((left, "requests_per_s", "requests / s"), (right, "ttft_median_s", "median TTFT (s)")):
        ax.plot([c["num_visual_tokens"] for c in mqt], [c[key] for c in mqt], "o-", label="MQT-LLaVA (one model)")
        ax.plot([c["num_visual_tokens"] for c in llava], [c[key] for c in llava], "D", color="C3",
                label="LLaVA, vLLM built-in")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("visual tokens per image")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    left.legend()
    fig.suptitle(f"vLLM serving, {report['requests']} requests, {report['concurrency']} concurrent, "
                 f"{report['new_tokens']} output tokens each")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def run(args: argparse.Namespace) -> int:
    counts = {"--requests": args.requests, "--concurrency": args.concurrency, "--new-tokens": args.new_tokens}
    bad = [f"{name} {value}" for name, value in counts.items() if value < 1]
    if args.warmup_requests < 0:
        bad.append(f"--warmup-requests {args.warmup_requests}")
    if bad:
        raise ValueError(f"these options must be positive (--warmup-requests: not negative): {', '.join(bad)}")
    if not (args.model / "config.json").is_file():
        raise FileNotFoundError(f"--model {args.model} is not a model folder (no config.json)")
    args.out.mkdir(parents=True, exist_ok=True)
    report = run_vllm_benchmark(args)
    (args.out / "bench_vllm.json").write_text(json.dumps(report, indent=2) + "\n")
    table = format_table(report)
    (args.out / "bench_vllm.md").write_text(table + "\n")
    plot(report, args.out / "bench_vllm.png")
    sys.stdout.write(table + f"\nWrote {args.out / 'bench_vllm.json'}, bench_vllm.md and bench_vllm.png\n")
    return 0
