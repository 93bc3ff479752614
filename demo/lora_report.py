"""The outputs of `mqt-llava demo --lora`: `results.json`, `table.md` and `curves.png`.

`results.json` schema (version 1):
    {"schema_version": 1,
     "domain": {"name", "description", "extends": {new family: standard family}, "floors_at_m": {family: fraction},
                "chance": {family: fraction, "average": ...}},
     "base_model": str, "recipe": "lora" | "qlora", "settings": {LoraSettings fields}, "command": str,
     "num_queries": M, "m_values": [m, ...], "families": {"new" | "old": [family, ...]},
     "splits": {"new" | "old": {"split", "seed", "num_scenes", "num_questions": {family: n}}},
     "accuracy": {"new" | "old": {"before" | "after": {"m": {family: fraction, "average": mean over families}}}},
     "accuracy_by_axis": {"before" | "after": {"m": {new family naming a half: {"horizontal" | "vertical": fraction}}}},
     "targets": {"new_after_misses": [str], "old_retention_misses": [str]},
     "training": {"seconds", "cpu_seconds", "peak_memory_mb", "losses": [float], "machine", "load_average",
                  "train_records"},
     "sizes": {"adapter_bytes", "base_bytes"},
     "reload": {"m_values", "num_questions", "num_answers", "answers": {"m": [answer]}, "peft_matches",
                "merged_matches", "classes"},
     "wall_time_s": float}
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

SCHEMA_VERSION = 1
DOMAINS = {"new": "new domain", "old": "old domain"}


def _percent(value: float) -> str:
    return f"{100 * value:.1f}"


def averages_table(results: dict[str, Any]) -> str:
    """Markdown: one row per m, the average accuracy (%) of both domains before and after, and the old domain's change."""
    header = "| m | new domain before | new domain after | old domain before | old domain after | old domain change |"
    lines = [header, "|---|---|---|---|---|---|"]
    accuracy = results["accuracy"]
    for m in results["m_values"]:
        key = str(m)
        new_before, new_after = (accuracy["new"][phase][key]["average"] for phase in ("before", "after"))
        old_before, old_after = (accuracy["old"][phase][key]["average"] for phase in ("before", "after"))
        change = f"{100 * (old_after - old_before):+.1f}"
        lines.append(f"| {m} | {_percent(new_before)} | {_percent(new_after)} | {_percent(old_before)} | {_percent(old_after)} | {change} |")
    return "\n".join(lines)


def families_table(results: dict[str, Any], domain: str, phase: str) -> str:
    """Markdown: accuracy (%) per family and the average at every m, for one domain ("new"/"old") and phase."""
    families = results["families"][domain]
    lines = ["| m | " + " | ".join([*families, "average"]) + " |", "|---|" + "---|" * (len(families) + 1)]
    for m in results["m_values"]:
        row = results["accuracy"][domain][phase][str(m)]
        lines.append(f"| {m} | " + " | ".join(_percent(row[f]) for f in [*families, "average"]) + " |")
    return "\n".join(lines)


def axis_table(results: dict[str, Any]) -> str:
    """Markdown: at m = M, the accuracy (%) of each new family that names a half (left/right or top/bottom), before
    and after, per axis of that half."""
    top = str(results["num_queries"])
    before, after = (results["accuracy_by_axis"][phase][top] for phase in ("before", "after"))
    lines = ["| family | left / right, before | left / right, after | top / bottom, before | top / bottom, after |",
             "|---|---|---|---|---|"]  # fmt: skip
    for family in after:
        cells = [_percent(table[family][axis]) if axis in table.get(family, {}) else "-"
                 for axis in ("horizontal", "vertical") for table in (before, after)]  # fmt: skip
        lines.append(f"| {family} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _mib(num_bytes: int) -> str:
    return f"{num_bytes / 2**20:.2f} MiB"


def summary_lines(results: dict[str, Any]) -> list[str]:
    """The cost, size, reload and target lines printed after the tables."""
    training, sizes, reload, targets = results["training"], results["sizes"], results["reload"], results["targets"]
    chance = results["domain"]["chance"]["average"]
    lines = [
        f"training: {training['seconds'] / 60:.1f} minutes wall clock, {training['cpu_seconds'] / 60:.1f} minutes of CPU time "
        f"({results['recipe']}, {results['settings']['max_steps']} steps of {results['settings']['batch_size']}), "
        f"peak memory {training['peak_memory_mb']:.0f} MiB; "
        f"{training['machine']}; load average {training['load_average']}",
        f"adapter {_mib(sizes['adapter_bytes'])} against the full model's {_mib(sizes['base_bytes'])} "
        f"({100 * sizes['adapter_bytes'] / sizes['base_bytes']:.0f}%)",
        f"new domain before: average {_percent(results['accuracy']['new']['before'][str(results['num_queries'])]['average'])} at "
        f"m = M (chance {_percent(chance)})",
        f"reloaded in a fresh process ({reload['num_questions']} questions x m in {reload['m_values']}): PeftModel "
        f"answers {reload['peft_matches']}/{reload['num_answers']} the same, merged folder through the pipeline "
        f"{reload['merged_matches']}/{reload['num_answers']}",
    ]
    for name, misses in (("new domain after, demo targets", targets["new_after_misses"]),
                         ("old domain, at most 3 points lower", targets["old_retention_misses"])):  # fmt: skip
        lines.append(f"{name}: " + ("all met" if not misses else "missed: " + "; ".join(misses)))
    return lines


def format_report(results: dict[str, Any]) -> str:
    """The whole Markdown report: averages, per-family tables of the new domain, and the summary lines."""
    return "\n\n".join(
        [
            f"## {results['recipe']} on {results['domain']['name']}",
            "Average accuracy (%) over each domain's families, before and after the adapter:",
            averages_table(results),
            "New domain after, per family (%):",
            families_table(results, "new", "after"),
            "New domain before, per family (%):",
            families_table(results, "new", "before"),
            "New domain at m = M by the axis of the half a question names (%):",
            axis_table(results),
            "\n".join(f"- {line}" for line in summary_lines(results)),
        ]
    )


def write_results(results: dict[str, Any], path: Path) -> Path:
    """Writes `results` (the schema above) as indented JSON."""
    path.write_text(json.dumps({"schema_version": SCHEMA_VERSION, **results}, indent=2) + "\n")
    return path


def plot_curves(results: dict[str, Any], path: Path) -> Path:
    """One panel per domain: the average before (dashed) and after (black) against m, each family after (thin),
    and for the new domain the chance level. Log-scaled x axis."""
    m_values = results["m_values"]
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for axis, (domain, title) in zip(axes, DOMAINS.items()):
        accuracy = results["accuracy"][domain]
        for family in results["families"][domain]:
            axis.plot(m_values, [100 * accuracy["after"][str(m)][family] for m in m_values], linewidth=1, alpha=0.7, label=f"{family} (after)")
        for phase, style in (("before", {"linestyle": "--", "color": "tab:gray"}), ("after", {"color": "black"})):
            values = [100 * accuracy[phase][str(m)]["average"] for m in m_values]
            axis.plot(m_values, values, marker="o", linewidth=2.5, label=f"average {phase}", **style)
        if domain == "new":
            axis.axhline(100 * results["domain"]["chance"]["average"], color="tab:red", linestyle=":", label="chance (average)")
        axis.set(xscale="log", xlabel="visual tokens m (log)", ylim=(0, 102), title=f"{title}: {results['splits'][domain]['split']} split")
        axis.set_xticks(m_values, [str(m) for m in m_values])
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7, loc="best")
    axes[0].set_ylabel("accuracy (%)")
    figure.suptitle(f"{results['recipe']} adapter on {results['domain']['name']}: before and after")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


__all__ = ["SCHEMA_VERSION", "averages_table", "axis_table", "families_table", "format_report", "plot_curves", "summary_lines", "write_results"]
