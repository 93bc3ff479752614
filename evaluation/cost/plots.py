"""Figures of `mqt-llava flops` and `mqt-llava bench`, drawn from their JSON reports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

__all__ = ["plot_bench", "plot_flops"]


def plot_flops(report: dict[str, Any], path: Path) -> None:
    """TFLOPs against m (log x): this project's totals and language-model share, the paper's points, the LLaVA peer."""
    rows = report["mqt_llava"]
    budgets = [row["num_visual_tokens"] for row in rows]
    llava = report["llava"]
    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.subplots()
    ax.plot(budgets, [row["tflops"] for row in rows], "o-", label="MQT-LLaVA, counted (whole model)")
    ax.plot(
        budgets,
        [row["flops"]["prefill"] / 1e12 for row in rows],
        "s--",
        alpha=0.6,
        label="MQT-LLaVA, counted (LM prefill)",
    )
    ax.plot([llava["num_visual_tokens"]], [llava["tflops"]], "D", color="C3", label="LLaVA peer, counted")
    paper = [(row["num_visual_tokens"], row["paper_tflops"]) for row in rows if row["paper_tflops"] is not None]
    if paper:
        ax.plot(*zip(*paper), "x", color="k", markersize=8, label="paper, Figure 1 (read off)")
    if llava["paper_tflops"] is not None:
        ax.plot(
            [llava["num_visual_tokens"]],
            [llava["paper_tflops"]],
            "+",
            color="k",
            markersize=11,
            label="LLaVA-1.5, paper",
        )
    ax.set_xscale("log", base=2)
    ax.set_xticks(budgets + [llava["num_visual_tokens"]])
    ax.set_xticklabels([str(m) for m in budgets + [llava["num_visual_tokens"]]])
    ax.set_xlabel("visual tokens per image")
    ax.set_ylabel("TFLOPs per forward pass")
    ax.set_title(f"Forward FLOPs, {report['prompt_tokens']} text tokens ({report['model']})", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def plot_bench(report: dict[str, Any], path: Path) -> None:
    """Left: wall-clock prefill, decode-step and generate times against m, with the LLaVA peers. Right: measured
    prefill speed-up (wall clock and CPU time) against the language-model FLOP ratio, both relative to m = M."""
    cases = report["cases"]
    mqt = [case for case in cases if case["kind"] == "mqt"]
    peers = [case for case in cases if case["kind"] == "llava"]
    budgets = [case["num_visual_tokens"] for case in mqt]
    fig = Figure(figsize=(11, 4.2))
    left, right = fig.subplots(1, 2)
    for key, marker, label in (
        ("prefill_s", "o-", "prefill"),
        ("generate_s", "s-", f"generate {report['new_tokens']} tokens"),
    ):
        left.plot(budgets, [case["wall_clock"][key]["median"] for case in mqt], marker, label=f"MQT-LLaVA {label}")
        left.plot(
            [case["num_visual_tokens"] for case in peers],
            [case["wall_clock"][key]["median"] for case in peers],
            marker[0],
            mfc="none",
            color=left.lines[-1].get_color(),
            label=f"LLaVA peer {label}",
        )
    left.plot(
        budgets, [case["wall_clock"]["decode_step_s"]["median"] for case in mqt], "^-", label="MQT-LLaVA decode step"
    )
    left.set_xscale("log", base=2)
    ticks = sorted(set(budgets) | {case["num_visual_tokens"] for case in peers})
    left.set_xticks(ticks)
    left.set_xticklabels([str(tick) for tick in ticks])
    left.set_yscale("log")
    left.set_xlabel("visual tokens per image")
    left.set_ylabel("seconds, wall clock (median)")
    left.set_title(f"CPU, {report['threads']} thread(s), config {report['config']}", fontsize=10)
    left.grid(alpha=0.3, which="both")
    left.legend(fontsize=7)
    top = 1.0
    for clock, marker, label in (("wall_clock", "o", "wall clock"), ("cpu_time", "x", "CPU time")):
        speedups = report["summary"][clock]["prefill_speedup"]
        ratios = [row["flop_ratio_language_model"] for row in speedups]
        measured = [row["measured"] for row in speedups]
        right.plot(ratios, measured, marker, label=f"measured prefill speed-up, {label}")
        top = max([top, *ratios, *measured])
    for row in report["summary"]["cpu_time"]["prefill_speedup"]:
        right.annotate(f"m={row['num_visual_tokens']}", (row["flop_ratio_language_model"], row["measured"]), fontsize=7)
    right.plot([1, top], [1, top], "k--", alpha=0.5, label="equal to the FLOP ratio")
    right.plot([1, top], [0.7, 0.7 * top], ":", color="gray", label="70% of the FLOP ratio")
    right.set_xlabel(f"LM prefill FLOP ratio, m = {report['num_queries']} / m")
    right.set_ylabel(f"measured prefill speed-up, m = {report['num_queries']} / m")
    right.grid(alpha=0.3)
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
