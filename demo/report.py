"""The demo's outputs: the accuracy/FLOPs table, `results.json` and the PNG plot.

`results.json` schema (version 1):
    {"schema_version": 1,
     "benchmark": {"name": "shapes_vqa", "split", "seed", "num_scenes", "num_questions": {family: n}},
     "model": str, "num_queries": M, "m_values": [m, ...], "families": [family, ...],
     "flops": {"m": forward FLOPs of one question prompt at m},
     "models": [{"name": str, "trained_m": str (the training distribution spec),
                 "accuracy": {"m": {family: fraction, ..., "average": mean over families}}}],
     "example": {"image": str, "question": str, "answer": str, "predictions": {"m": str}},
     "wall_time_s": float, "peak_memory_mb": float,
     with --train also "training_seconds": {step: seconds}, "vision_patch_accuracy": {label: fraction}}
The first model is the Matryoshka model, evaluated at every m; fixed-m baselines are evaluated at their own m.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

SCHEMA_VERSION = 1


def average(accuracy: dict[str, float], families: list[str]) -> float:
    """Mean accuracy over `families` (each family weighs the same, whatever its number of questions)."""
    return sum(accuracy[family] for family in families) / len(families)


def format_table(results: dict[str, Any]) -> str:
    """A Markdown table: one row per (model, m), a column per family, the average and the forward MFLOPs."""
    families = results["families"]
    header = ["model", "m", *families, "average", "MFLOPs"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    for model in results["models"]:
        for m, accuracy in sorted(model["accuracy"].items(), key=lambda item: int(item[0])):
            cells = [model["name"], m, *(f"{100 * accuracy[f]:.1f}" for f in families), f"{100 * accuracy['average']:.1f}"]
            cells.append(f"{results['flops'][m] / 1e6:.1f}")
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_results(results: dict[str, Any], path: str | Path) -> Path:
    """Writes `results` (the schema above) as indented JSON."""
    path = Path(path)
    path.write_text(json.dumps({"schema_version": SCHEMA_VERSION, **results}, indent=2) + "\n")
    return path


def plot_results(results: dict[str, Any], path: str | Path) -> Path:
    """Left: accuracy per family (and average) against m, baselines as markers at their own m. Right: FLOPs against m.
    Both x axes are log-scaled."""
    families = results["families"]
    m_values = [int(m) for m in results["m_values"]]
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [3, 2]})
    main, *baselines = results["models"]
    for family in [*families, "average"]:
        values = [100 * main["accuracy"][str(m)][family] for m in m_values]
        style = {"linewidth": 2.5, "color": "black"} if family == "average" else {"linewidth": 1.5}
        left.plot(m_values, values, marker="o", label=family, **style)
    for baseline in baselines:
        for m, accuracy in baseline["accuracy"].items():
            left.scatter([int(m)], [100 * accuracy["average"]], marker="*", s=160, color="crimson", zorder=5)
            left.annotate(baseline["name"], (int(m), 100 * accuracy["average"]), textcoords="offset points", xytext=(4, -12), fontsize=8)
    left.set(xscale="log", xlabel="visual tokens m (log)", ylabel="accuracy (%)", ylim=(0, 102))
    left.set_title(f"{main['name']}: one model, every m" + (" (stars: fixed-m models, average)" if baselines else ""))
    left.set_xticks(m_values, [str(m) for m in m_values])
    left.grid(alpha=0.3)
    left.legend(fontsize=8, loc="lower right")
    right.plot(m_values, [results["flops"][str(m)] / 1e6 for m in m_values], marker="o", color="tab:gray")
    right.set(xscale="log", xlabel="visual tokens m (log)", ylabel="forward MFLOPs per question", title="cost")
    right.set_xticks(m_values, [str(m) for m in m_values])
    right.grid(alpha=0.3)
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


__all__ = ["SCHEMA_VERSION", "average", "format_table", "plot_results", "write_results"]
