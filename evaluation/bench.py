"""`mqt-llava bench`: CPU latency and memory for each token budget, against LLaVA peers on the same language model.

(`--engine vllm` measures serving throughput through vLLM instead: `mqt_llava.evaluation.vllm_bench`. What follows
is the default `--engine transformers`.)

Measured settings ("cases"), all on one randomly initialised model of the chosen size:
- `mqt-m{m}`: this model with m visual tokens per image, for each budget;
- `llava-{N}`: transformers' `LlavaForConditionalGeneration` on the same vision tower and language model (shared
  modules) with an MLP projector and one token per grid feature (576 at 336 px): the model a user would pick instead;
- `llava-eq-{m}`: the same peer with a vision grid of exactly m patches (e.g. 16 x 16 for m = 256), for every square
  budget: equal visual tokens, so any time difference is this model's plumbing;
- `text-only`: the prompt of `mqt-m{M}` with its image tokens replaced by text, to check decode steps do not depend
  on whether the prompt had an image.

Each round runs every case once (rounds interleave the cases so that load changes hit all of them alike): the first
forward of the prompt (image encoding and prefill split inside the same call by hooks on the image path),
`--decode-steps` single-token steps on its cache, and `generate` of `--new-tokens` tokens. The first `--warmup`
rounds are discarded; medians, minima and maxima are over the rest. Every timing is taken on two clocks: wall clock,
and the CPU time of this process, which does not count the time other processes held the cores (on a shared
machine the ratios are steadier on it). Peak memory (kernel high-water mark above the resident memory before the
call) and KV-cache bytes are taken once per case. Writes `OUT/bench.json` and `OUT/bench.png`.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import math
import os
import platform
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
import transformers
from transformers import LlavaForConditionalGeneration

from mqt_llava.evaluation.cost.bench_report import TIMED, format_summary, summarize
from mqt_llava.evaluation.cost.bench_setup import (
    BENCH_CONFIGS,
    BenchCase,
    build_bench_model,
    prompt_with_text_tokens,
    set_image_run_length,
    text_only_ids,
)
from mqt_llava.evaluation.cost.flop_counting import count_on_fake_tensors, count_parts
from mqt_llava.evaluation.cost.kv_cache import cache_of, next_step_inputs
from mqt_llava.evaluation.cost.options import DEFAULT_PROMPT_TOKENS, budgets_for, int_list
from mqt_llava.evaluation.cost.peer import build_llava_peer, grid_features, llava_peer_config, peer_image_size
from mqt_llava.evaluation.cost.plots import plot_bench
from mqt_llava.evaluation.cost.timing import Clocks, SectionTimer, Stats, kv_cache_bytes, peak_memory_during
from mqt_llava.evaluation.vllm_bench import add_vllm_arguments
from mqt_llava.modeling_mqt_llava import MqtLlavaForConditionalGeneration
from mqt_llava.processing.processing_mqt_llava import MqtLlavaProcessor
from mqt_llava.tools.testing import make_image

__all__ = ["add_arguments", "build_cases", "run", "run_benchmark"]

logger = logging.getLogger(__name__)

CLOCKS = {"wall_clock": "wall", "cpu_time": "cpu"}  # report key -> `Clocks` field


def build_cases(
    model: MqtLlavaForConditionalGeneration,
    processor: MqtLlavaProcessor,
    budgets: list[int],
    prompt_tokens: int,
    batch_size: int,
) -> list[BenchCase]:
    """Every measured setting (see the module docstring), inputs included."""
    config = model.config
    image_id = config.image_token_id
    prompt = prompt_with_text_tokens(processor, prompt_tokens)
    images = [make_image(seed, config.vision_config.image_size) for seed in range(batch_size)]
    mqt_path = (model.model.vision_tower, model.model.query_transformer)
    cases = []
    for m in budgets:
        inputs = dict(processor(images=images, text=[prompt] * batch_size, num_visual_tokens=m, return_tensors="pt"))
        cases.append(BenchCase(f"mqt-m{m}", "mqt", m, model, inputs, mqt_path))
    base_ids = cases[-1].inputs["input_ids"]
    pixel_values = cases[-1].inputs["pixel_values"]
    peer_sizes = {grid_features(config): None}
    for m in budgets:
        if math.isqrt(m) ** 2 == m and m < grid_features(config):
            peer_sizes[m] = peer_image_size(config, m)
    for tokens, image_size in sorted(peer_sizes.items()):
        peer = build_llava_peer(model, image_size)
        peer_pixels = pixel_values
        if image_size is not None:
            peer_pixels = torch.nn.functional.interpolate(pixel_values, size=(image_size, image_size), mode="bilinear")
        ids = set_image_run_length(base_ids, image_id, tokens)
        inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "pixel_values": peer_pixels}
        name = f"llava-{tokens}" if image_size is None else f"llava-eq-{tokens}"
        cases.append(
            BenchCase(name, "llava", tokens, peer, inputs, (peer.model.vision_tower, peer.model.multi_modal_projector))
        )
    filler = processor.tokenizer.convert_tokens_to_ids("the")
    ids = text_only_ids(base_ids, image_id, filler)
    cases.append(
        BenchCase("text-only", "text-only", 0, model, {"input_ids": ids, "attention_mask": torch.ones_like(ids)}, None)
    )
    return cases


def _generate(case: BenchCase, new_tokens: int) -> torch.Tensor:
    return case.model.generate(**case.inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False)


def _measure_round(case: BenchCase, decode_steps: int, new_tokens: int) -> dict[str, list[Clocks]]:
    """One run of every timing of a case: first forward (split into image encoding and prefill), decode steps on its
    cache, and a whole `generate`."""
    timer = SectionTimer(*case.image_path) if case.image_path else nullcontext()
    with timer:
        start = Clocks.now()
        output = case.model(**case.inputs, use_cache=True, logits_to_keep=1)
        forward = Clocks.now() - start
    image = timer.total() if case.image_path else Clocks(0.0, 0.0)
    token = output.logits[:, -1:].argmax(-1)
    cache = next_step_inputs(output)
    steps = []
    for _ in range(decode_steps):
        start = Clocks.now()
        output = case.model(input_ids=token, **cache, use_cache=True, logits_to_keep=1)
        cache = next_step_inputs(output)
        steps.append(Clocks.now() - start)
        token = output.logits[:, -1:].argmax(-1)
    start = Clocks.now()
    _generate(case, new_tokens)
    generate = Clocks.now() - start
    return {
        "image_encoding_s": [image],
        "prefill_s": [forward - image],
        "decode_step_s": steps,
        "generate_s": [generate],
    }


def _kv_bytes_per_token(model: MqtLlavaForConditionalGeneration) -> int:
    """Bytes one token adds to the KV cache: a key and a value per layer and key-value head."""
    text = model.config.text_config
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
    return 2 * text.num_hidden_layers * text.num_key_value_heads * head_dim * next(model.parameters()).element_size()


def _case_flops(
    model: MqtLlavaForConditionalGeneration, case: BenchCase, prompt_tokens: int, batch_size: int
) -> dict[str, int] | None:
    """FLOPs per part of a case, counted on a fake copy of its model (None for the text-only case)."""
    config = model.config
    if case.kind == "text-only":
        return None
    image_size = case.inputs["pixel_values"].shape[-1]

    def build() -> torch.nn.Module:
        if case.kind == "mqt":
            return MqtLlavaForConditionalGeneration(config)
        return LlavaForConditionalGeneration(llava_peer_config(config, image_size))

    image_kwargs = {"num_visual_tokens": case.num_visual_tokens} if case.kind == "mqt" else {}
    counted = count_on_fake_tensors(
        build,
        lambda fake: count_parts(
            fake,
            image_size=image_size,
            prompt_tokens=prompt_tokens,
            num_visual_tokens=case.num_visual_tokens,
            image_kwargs=image_kwargs,
            batch_size=batch_size,
        ),
    )
    return counted.as_dict()


def _cpu_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def run_benchmark(
    config_name: str,
    budgets: list[int] | None = None,
    batch_size: int = 1,
    prompt_tokens: int = DEFAULT_PROMPT_TOKENS,
    new_tokens: int = 32,
    decode_steps: int = 8,
    warmup: int = 1,
    repeats: int = 5,
    threads: int = 1,
) -> dict[str, Any]:
    """Runs the whole benchmark and returns the `bench.json` document."""
    torch.set_num_threads(threads)
    load_start = os.getloadavg()
    model, processor = build_bench_model(config_name)
    num_queries = model.config.num_queries
    budgets = sorted(set(budgets_for(num_queries, budgets)) | {num_queries})  # speed-ups are relative to m = M
    cases = build_cases(model, processor, budgets, prompt_tokens, batch_size)
    samples = {case.name: {key: [] for key in TIMED} for case in cases}
    with torch.no_grad():
        for round_index in range(warmup + repeats):
            for case in cases:
                measured = _measure_round(case, decode_steps, new_tokens)
                if round_index >= warmup:
                    for key, values in measured.items():
                        samples[case.name][key].extend(values)
            logger.info("round %d/%d done", round_index + 1, warmup + repeats)
        results = []
        for case in cases:
            output = case.model(**case.inputs, use_cache=True, logits_to_keep=1)
            sequence_tokens = case.inputs["input_ids"].shape[1]
            _, peak = peak_memory_during(functools.partial(_generate, case, new_tokens))
            results.append(
                {
                    "name": case.name,
                    "kind": case.kind,
                    "num_visual_tokens": case.num_visual_tokens,
                    "sequence_tokens": sequence_tokens,
                    **{
                        clock: {
                            key: Stats.of([getattr(c, field) for c in samples[case.name][key]]).as_dict()
                            for key in TIMED
                        }
                        for clock, field in CLOCKS.items()
                    },
                    "generate_peak_memory_bytes": peak,
                    "kv_cache_bytes": kv_cache_bytes(cache_of(output)),
                    "kv_cache_bytes_expected": batch_size * sequence_tokens * _kv_bytes_per_token(model),
                    "flops": _case_flops(model, case, prompt_tokens, batch_size),
                }
            )
    report = {
        "config": config_name,
        "num_queries": model.config.num_queries,
        "torch_version": torch.__version__,
        "transformers_version": transformers.__version__,
        "threads": torch.get_num_threads(),
        "machine": {
            "cpu": _cpu_name(),
            "cpu_count": os.cpu_count(),
            "load_average_at_start": load_start,
            "load_average_at_end": os.getloadavg(),
        },
        "batch_size": batch_size,
        "prompt_tokens": prompt_tokens,
        "new_tokens": new_tokens,
        "decode_steps": decode_steps,
        "warmup_rounds": warmup,
        "repeats": repeats,
        "language_model_parameters": sum(p.numel() for p in model.model.language_model.parameters()),
        "cases": results,
    }
    report["summary"] = {clock: summarize(report, clock) for clock in CLOCKS}
    report["summary"]["kv_cache_matches_text_plus_m"] = all(
        case["kv_cache_bytes"] == case["kv_cache_bytes_expected"] for case in results
    )
    return report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--engine",
        choices=["transformers", "vllm"],
        default="transformers",
        help="transformers: CPU latency and memory of random models (the options below). vllm: serving throughput of "
        "a model folder through vLLM's OpenAI-compatible server (the --engine vllm options; docs/serving.md).",
    )
    parser.add_argument(
        "--config", choices=sorted(BENCH_CONFIGS), default="small", help="Model size (tiny: CI, seconds)."
    )
    parser.add_argument(
        "--num-visual-tokens",
        type=int_list,
        help="Comma-separated budgets (default: 2,4,8,16,36,64,144,256 up to M); M is always added (speed-ups are "
        "relative to it).",
    )
    parser.add_argument("--batch-size", type=int, default=1, help="Prompts (one image each) per call.")
    parser.add_argument(
        "--prompt-tokens", type=int, default=DEFAULT_PROMPT_TOKENS, help="Text tokens around the image."
    )
    parser.add_argument("--new-tokens", type=int, default=32, help="Tokens generated in the end-to-end timing.")
    parser.add_argument("--decode-steps", type=int, default=8, help="Single-token steps timed after each prefill.")
    parser.add_argument("--warmup", type=int, default=1, help="Rounds run first and discarded.")
    parser.add_argument("--repeats", type=int, default=5, help="Measured rounds.")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads value.")
    parser.add_argument("--out", type=Path, default=Path("runs/bench"), help="Folder for the report and its figure.")
    add_vllm_arguments(parser)


def run(args: argparse.Namespace) -> int:
    if args.engine == "vllm":
        from mqt_llava.evaluation import vllm_bench

        return vllm_bench.run(args)
    counts = {name: getattr(args, name) for name in ("batch_size", "new_tokens", "decode_steps", "repeats", "threads")}
    bad = [f"--{name.replace('_', '-')} {value}" for name, value in counts.items() if value < 1]
    if args.warmup < 0:
        bad.append(f"--warmup {args.warmup}")
    if bad:
        logger.error("these options must be positive (--warmup: not negative): %s", ", ".join(bad))
        return 2
    torch.set_num_threads(args.threads)
    sys.stdout.write(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), config {args.config}\n")
    try:
        report = run_benchmark(
            args.config,
            args.num_visual_tokens,
            args.batch_size,
            args.prompt_tokens,
            args.new_tokens,
            args.decode_steps,
            args.warmup,
            args.repeats,
            args.threads,
        )
    except ValueError as error:
        logger.error("%s", error)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench.json").write_text(json.dumps(report, indent=2) + "\n")
    plot_bench(report, args.out / "bench.png")
    sys.stdout.write(format_summary(report))
    sys.stdout.write(f"\nWrote {args.out / 'bench.json'} and {args.out / 'bench.png'}\n")
    return 0
