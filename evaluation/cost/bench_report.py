"""The ratios `mqt-llava bench` reports (the targets are stated in them) and its Markdown tables."""

from __future__ import annotations

from typing import Any

from mqt_llava.evaluation.cost.options import markdown_table

__all__ = ["TIMED", "format_summary", "summarize"]

TIMED = (  # timings of every case, in seconds
    "image_encoding_s",
    "prefill_s",
    "decode_step_s",
    "generate_s",
)


def summarize(report: dict[str, Any], clock: str) -> dict[str, Any]:
    """Ratios the targets are stated in, from the medians of `clock` ("wall_clock" or "cpu_time"): prefill speed-up
    against the LM FLOP ratio (relative to m = M), this model against the equal-token and full-grid peers, and the
    decode step with and without an image."""
    cases = {case["name"]: case for case in report["cases"]}
    mqt = [case for case in report["cases"] if case["kind"] == "mqt"]

    def median(case: dict[str, Any], key: str) -> float:
        return case[clock][key]["median"]

    top = cases[f"mqt-m{report['num_queries']}"]
    full_peer = next(
        case for case in report["cases"] if case["kind"] == "llava" and not case["name"].startswith("llava-eq")
    )
    speedups, equal = [], []
    for case in mqt:
        measured = median(top, "prefill_s") / median(case, "prefill_s")
        flop_ratio = top["flops"]["prefill"] / case["flops"]["prefill"]
        speedups.append(
            {
                "num_visual_tokens": case["num_visual_tokens"],
                "measured": measured,
                "flop_ratio_language_model": flop_ratio,
                "fraction_of_flop_ratio": measured / flop_ratio,
            }
        )
        peer = cases.get(f"llava-eq-{case['num_visual_tokens']}") or cases.get(f"llava-{case['num_visual_tokens']}")
        if peer is not None:
            equal.append(
                {
                    "num_visual_tokens": case["num_visual_tokens"],
                    "peer": peer["name"],
                    "prefill_ratio": median(case, "prefill_s") / median(peer, "prefill_s"),
                    "decode_step_ratio": median(case, "decode_step_s") / median(peer, "decode_step_s"),
                }
            )
    return {
        "prefill_speedup": speedups,
        "equal_visual_tokens": equal,
        "against_full_grid_peer": [
            {
                "num_visual_tokens": case["num_visual_tokens"],
                "peer": full_peer["name"],
                "prefill_speedup": median(full_peer, "prefill_s") / median(case, "prefill_s"),
                "generate_speedup": median(full_peer, "generate_s") / median(case, "generate_s"),
            }
            for case in mqt
        ],
        "decode_step_with_image_over_text_only": median(top, "decode_step_s")
        / median(cases["text-only"], "decode_step_s"),
    }


def _ms(stats: dict[str, float]) -> str:
    return f"{stats['median'] * 1e3:.1f} ({stats['min'] * 1e3:.1f}-{stats['max'] * 1e3:.1f})"


def format_summary(report: dict[str, Any]) -> str:
    """The measurements as Markdown tables: per case, then the ratios the targets are stated in (both clocks)."""
    machine = report["machine"]
    header = (
        f"torch {report['torch_version']}, transformers {report['transformers_version']}, "
        f"{report['threads']} thread(s), config {report['config']}, batch {report['batch_size']}, "
        f"{report['prompt_tokens']} text tokens, {report['repeats']} runs after {report['warmup_rounds']} warm-up "
        f"round(s), load average {machine['load_average_at_start'][0]:.1f} -> {machine['load_average_at_end'][0]:.1f} "
        f"on {machine['cpu_count']} cores; times in ms, median (min-max)"
    )
    lines = [header, ""]
    rows = []
    for case in report["cases"]:
        wall, cpu, peak = case["wall_clock"], case["cpu_time"], case["generate_peak_memory_bytes"]
        rows.append(
            [case["name"], str(case["sequence_tokens"])]
            + [_ms(wall[key]) for key in TIMED]
            + [_ms(cpu["prefill_s"]), _ms(cpu["decode_step_s"])]
            + ["-" if peak is None else f"{peak / 2**20:.1f}", f"{case['kv_cache_bytes'] / 2**20:.2f}"]
        )
    lines += markdown_table(
        ["case", "tokens", "image encoding", "prefill", "decode step", "generate", "prefill, CPU time"]
        + ["decode step, CPU time", "peak memory (MiB)", "KV cache (MiB)"],
        rows,
    )
    wall, cpu = report["summary"]["wall_clock"], report["summary"]["cpu_time"]
    lines += markdown_table(
        ["m", f"LM FLOP ratio vs m = {report['num_queries']}", "prefill speed-up, wall", "/ FLOP ratio"]
        + ["prefill speed-up, CPU time", "/ FLOP ratio"],
        [
            [str(w["num_visual_tokens"]), f"{w['flop_ratio_language_model']:.2f}", f"{w['measured']:.2f}"]
            + [f"{w['fraction_of_flop_ratio']:.0%}", f"{c['measured']:.2f}", f"{c['fraction_of_flop_ratio']:.0%}"]
            for w, c in zip(wall["prefill_speedup"], cpu["prefill_speedup"])
        ],
    )
    lines += markdown_table(
        ["m", "equal-token peer", "prefill / peer's, wall", "decode step / peer's, wall"]
        + ["prefill / peer's, CPU time", "decode step / peer's, CPU time"],
        [
            [str(w["num_visual_tokens"]), w["peer"], f"{w['prefill_ratio']:.3f}", f"{w['decode_step_ratio']:.3f}"]
            + [f"{c['prefill_ratio']:.3f}", f"{c['decode_step_ratio']:.3f}"]
            for w, c in zip(wall["equal_visual_tokens"], cpu["equal_visual_tokens"])
        ],
    )
    lines += markdown_table(
        ["m", "full-grid peer", "prefill speed-up, wall", "generate speed-up, wall"],
        [
            [
                str(row["num_visual_tokens"]),
                row["peer"],
                f"{row['prefill_speedup']:.2f}",
                f"{row['generate_speedup']:.2f}",
            ]
            for row in wall["against_full_grid_peer"]
        ],
    )
    key = "decode_step_with_image_over_text_only"
    lines += [
        f"decode step with an image / text only, same length: {wall[key]:.3f} (wall), {cpu[key]:.3f} (CPU time)",
        f"KV cache = (text + m) tokens exactly: {report['summary']['kv_cache_matches_text_plus_m']}",
    ]
    return "\n".join(lines) + "\n"
