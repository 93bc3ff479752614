"""The automatic budget's report: fixed budgets and thresholds side by side, escalation by family, the 7B estimate."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from mqt_llava.evaluation.auto_budget.calibration import OperatingPoint
from mqt_llava.evaluation.auto_budget.costs import CostCounter, PromptShape
from mqt_llava.evaluation.cost.flop_counting import count_on_fake_tensors
from mqt_llava.evaluation.cost.options import markdown_table
from mqt_llava.evaluation.flops import PAPER_LLAVA_TFLOPS, PAPER_TFLOPS
from mqt_llava.modeling_mqt_llava import MqtLlavaForConditionalGeneration
from mqt_llava.modeling_mqt_llava.adaptive_budget import parse_schedule
from mqt_llava.tools.presets import preset_config

# The 7B prompt of `mqt-llava flops` (54 text tokens, docs/cost.md), split at the image: BOS, the Vicuna v1 system
# line and "USER:" before it (38 Llama tokens, estimated), the question and " ASSISTANT:" after it.
PAPER_PROMPT = PromptShape(prefix=38, suffix=16)


def fixed_curve_accuracy(fixed: Sequence[OperatingPoint], total_flops: float) -> float:
    """The fixed-budget curve's accuracy at a mean cost, interpolated linearly between its neighbouring points
    (clamped to the curve's ends)."""
    points = sorted(fixed, key=lambda point: point.total_flops)
    costs = [point.total_flops for point in points]
    return float(np.interp(total_flops, costs, [point.accuracy for point in points]))


def estimate_7b(schedule_spec: str, shares: Sequence[float]) -> dict[str, Any]:
    """Expected forward TFLOPs of the paper's 7B shape when `shares[s]` of questions stop at schedule step s (the
    schedule resolved for M = 256), next to the fixed budgets counted the same way and the paper's Figure 1."""
    config = preset_config("mqt-llava-7b")
    schedule = parse_schedule(schedule_spec, config.num_queries)
    if len(schedule) != len(shares):
        raise ValueError(f"schedule {schedule} has {len(schedule)} steps for the 7B shape, but {len(shares)} shares were given")

    def count(model: MqtLlavaForConditionalGeneration) -> dict[str, Any]:
        counter = CostCounter(model)
        steps = [counter.auto(PAPER_PROMPT, schedule[: s + 1]) for s in range(len(schedule))]
        expected = {key: sum(share * step[key] for share, step in zip(shares, steps)) for key in ("language_model", "total")}
        fixed = {m: counter.fixed(PAPER_PROMPT, m) for m in sorted({*schedule, *PAPER_TFLOPS})}
        return {"expected": expected, "fixed": fixed}

    counted = count_on_fake_tensors(lambda: MqtLlavaForConditionalGeneration(config), count)
    return {
        "prompt": dataclasses.asdict(PAPER_PROMPT),
        "schedule": list(schedule),
        "shares": list(shares),
        "expected_tflops": counted["expected"]["total"] / 1e12,
        "expected_language_model_tflops": counted["expected"]["language_model"] / 1e12,
        "fixed": [
            {"num_visual_tokens": m, "tflops": cost["total"] / 1e12, "paper_tflops": PAPER_TFLOPS.get(m)}
            for m, cost in counted["fixed"].items()
        ],
        "paper_llava_tflops": PAPER_LLAVA_TFLOPS,
    }


def comparison_table(fixed: Sequence[OperatingPoint], auto: Sequence[OperatingPoint]) -> list[str]:
    """Markdown: accuracy, mean FLOPs and LM share against the full budget, per fixed m and per threshold."""
    full = max(fixed, key=lambda point: point.total_flops)
    rows = []
    for point in [*fixed, *auto]:
        curve = "" if point.threshold is None else f"{100 * (point.accuracy - fixed_curve_accuracy(fixed, point.total_flops)):+.1f}"
        rows.append(
            [
                point.label,
                f"{100 * point.accuracy:.1f}",
                f"{point.total_flops / 1e6:.1f}",
                f"{point.language_model_flops / full.language_model_flops:.2f}",
                curve,
            ]
        )
    header = ["answered at", "accuracy (%)", "forward MFLOPs / question", "LM prefill vs full", "vs fixed curve (pts)"]
    return markdown_table(header, rows)


def escalation_table(point: OperatingPoint, schedule: Sequence[int]) -> list[str]:
    """Markdown: for one threshold, the share of each family's questions answered at each budget, and accuracy."""
    header = ["family", *[f"m = {m} (%)" for m in schedule], "accuracy (%)"]
    rows = [
        [family, *[f"{100 * shares.get(m, 0.0):.1f}" for m in schedule], f"{100 * point.accuracy_by_family[family]:.1f}"]
        for family, shares in point.answered_at.items()
    ]
    return markdown_table(header, rows)


def plot(fixed: Sequence[OperatingPoint], auto: Sequence[OperatingPoint], chosen: OperatingPoint | None, path: Path) -> None:
    """Accuracy against mean forward FLOPs per question: the fixed budgets as a curve, the thresholds as points."""
    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.subplots()
    curve = sorted(fixed, key=lambda point: point.total_flops)
    ax.plot([p.total_flops / 1e6 for p in curve], [100 * p.accuracy for p in curve], "o-", label="fixed m")
    for point in curve:
        ax.annotate(point.label.removeprefix("m = "), (point.total_flops / 1e6, 100 * point.accuracy), fontsize=7,
                    textcoords="offset points", xytext=(3, -9))  # fmt: skip
    ax.plot([p.total_flops / 1e6 for p in auto], [100 * p.accuracy for p in auto], "s", color="C1", label='"auto", thresholds')
    if chosen is not None:
        ax.plot([chosen.total_flops / 1e6], [100 * chosen.accuracy], "*", color="C3", markersize=13, label="calibrated threshold")
    ax.set_xlabel("mean forward MFLOPs per question")
    ax.set_ylabel("accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


__all__ = ["PAPER_PROMPT", "comparison_table", "escalation_table", "estimate_7b", "fixed_curve_accuracy", "plot"]
