"""The demo's accuracy targets, as checks that list what a curve misses (empty list: every target holds).

`curve_misses` and `baseline_misses` are the bar of the shipped demo model (docs/demo.md, "Measurements");
`mqt-llava demo --lora` holds the adapted model to the same curve bar on the new domain (each new family at the floor
of the standard family it extends), and `retention_misses` to keeping the old domain.
"""

from __future__ import annotations

from collections.abc import Mapping

# Per-family floors at m = M.
FLOORS_AT_M = {"background": 0.95, "color": 0.85, "exists": 0.85, "count": 0.70, "position": 0.85}
# Largest drop of the old domain's average at any m that fine-tuning on a new domain may cause.
MAX_RETENTION_DROP = 0.03
# Largest lead of a model trained for one m over the Matryoshka model, on the average at that m.
MAX_BASELINE_GAP = 0.03


def curve_misses(
    accuracy: dict[str, dict[str, float]], num_queries: int, floors: Mapping[str, float] = FLOORS_AT_M
) -> list[str]:
    """The targets an accuracy curve ({"m": {family: fraction, "average": mean}}) misses: the per-family `floors` at M
    (default: the demo's five families); average at M/4 >= 0.90 x and at M/16 >= 0.72 x the average at M; average
    >= 0.87 at m = 16 and >= 0.70 at m = 4; background (where the curve has it) >= 0.95 at every m >= 2; and the
    average never more than 2 points below its value at any smaller m."""
    at = {int(m): row for m, row in accuracy.items()}
    average = {m: row["average"] for m, row in at.items()}
    top = average[num_queries]
    missing = sorted(set(floors) - set(at[num_queries]))
    if missing:
        raise ValueError(f"the curve has no accuracy for families {missing} at m = {num_queries}")
    misses = [f"{family} {at[num_queries][family]:.3f} < {floor} at M" for family, floor in floors.items()
              if at[num_queries][family] < floor]  # fmt: skip
    for m, ratio in ((num_queries // 4, 0.90), (num_queries // 16, 0.72)):
        if average[m] < ratio * top:
            misses.append(f"average {average[m]:.3f} at m = {m} < {ratio} x {top:.3f}")
    for m, floor in ((16, 0.87), (4, 0.70)):
        if average[m] < floor:
            misses.append(f"average {average[m]:.3f} < {floor} at m = {m}")
    misses += [f"background {row['background']:.3f} < 0.95 at m = {m}" for m, row in at.items()
               if m >= 2 and row.get("background", 1.0) < 0.95]  # fmt: skip
    best = 0.0
    for m in sorted(average):
        if average[m] < best - 0.02:
            misses.append(f"average falls to {average[m]:.3f} at m = {m} from {best:.3f} at a smaller m")
        best = max(best, average[m])
    return misses


def retention_misses(
    before: dict[str, dict[str, float]], after: dict[str, dict[str, float]], max_drop: float = MAX_RETENTION_DROP
) -> list[str]:
    """The m (keys of `before`, {"m": {..., "average": fraction}}) at which the average of `after` is more than
    `max_drop` below that of `before`; raises `ValueError` if `after` lacks one of them."""
    missing = sorted(set(before) - set(after), key=int)
    if missing:
        raise ValueError(f"the curve after fine-tuning has no accuracy at m = {missing}")
    return [
        f"average {after[m]['average']:.3f} at m = {m} is {before[m]['average'] - after[m]['average']:.3f} below "
        f"{before[m]['average']:.3f} (allowed {max_drop})"
        for m in sorted(before, key=int)
        if after[m]["average"] < before[m]["average"] - max_drop
    ]


def baseline_misses(models: list[dict], max_gap: float = MAX_BASELINE_GAP) -> list[str]:
    """The fixed-m baselines that the Matryoshka model trails by more than `max_gap` on the average at their own m.

    `models` is the `models` list of the demo's `results.json`: the Matryoshka model first, then the baselines, each
    {"name", "accuracy": {"m": {..., "average": fraction}}}. Raises `ValueError` if the Matryoshka model lacks a
    baseline's m."""
    matryoshka, *baselines = models
    misses = []
    for baseline in baselines:
        for m, row in baseline["accuracy"].items():
            if m not in matryoshka["accuracy"]:
                raise ValueError(f"the Matryoshka model has no accuracy at m = {m}, where {baseline['name']} was scored")
            gap = row["average"] - matryoshka["accuracy"][m]["average"]
            if gap > max_gap:
                misses.append(f"{baseline['name']} leads by {gap:.3f} at m = {m} (allowed {max_gap})")
    return misses


__all__ = ["FLOORS_AT_M", "MAX_BASELINE_GAP", "MAX_RETENTION_DROP", "baseline_misses", "curve_misses", "retention_misses"]
