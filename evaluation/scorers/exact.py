"""Exact-match accuracy for short answers: GQA and Shapes-VQA.

GQA's official evaluation compares the answer string with the gold one; LLaVA's conversion step lower-cases the
prediction and drops a trailing period first. Shapes-VQA uses the same rule, reported per question family.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping

__all__ = ["normalize_short_answer", "score_exact_match"]


def normalize_short_answer(answer: str) -> str:
    """Lower-case, strip surrounding white space and trailing periods ("Red." -> "red")."""
    return answer.strip().lower().rstrip(".").strip()


def score_exact_match(samples: Iterable[Mapping], group_key: str | None = "category") -> dict[str, float]:
    """Exact-match accuracy (percent) overall and per group.

    Each sample has `prediction` and `answer` (str), and `group_key` (e.g. "category") when per-group accuracy is
    wanted. Returns {"accuracy", "accuracy/<group>"..., "num_samples"}.
    """
    overall: list[bool] = []
    per_group: dict[str, list[bool]] = defaultdict(list)
    for sample in samples:
        correct = normalize_short_answer(sample["prediction"]) == normalize_short_answer(str(sample["answer"]))
        overall.append(correct)
        if group_key is not None and sample.get(group_key) is not None:
            per_group[str(sample[group_key])].append(correct)
    if not overall:
        raise ValueError("score_exact_match got no samples to score")
    metrics = {"accuracy": 100.0 * sum(overall) / len(overall)}
    for group, values in sorted(per_group.items()):
        metrics[f"accuracy/{group}"] = 100.0 * sum(values) / len(values)
    metrics["num_samples"] = float(len(overall))
    return metrics
