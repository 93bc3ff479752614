"""Exact-match accuracy for short answers: GQA and Shapes-VQA.

GQA (reference: LLaVA's `scripts/convert_gqa_for_eval.py`, then GQA's own `eval.py`): the prediction has its
trailing periods dropped and is lower-cased, nothing else, and must then equal the gold answer string exactly, so
"wood ." (a space before the period) is wrong. The forgiving reading (`--lenient-parsing`) also trims white space on
both sides of both strings; it is Shapes-VQA's own rule, reported per question family.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping

__all__ = ["gqa_prediction", "normalize_short_answer", "score_exact_match", "score_gqa"]


def normalize_short_answer(answer: str) -> str:
    """Lower-case, strip surrounding white space and trailing periods ("Red." -> "red", "wood ." -> "wood")."""
    return answer.strip().lower().rstrip(".").strip()


def gqa_prediction(answer: str) -> str:
    """The prediction as GQA's reference conversion writes it: trailing periods dropped, lower-cased ("Red." -> "red",
    "wood ." -> "wood ")."""
    return answer.rstrip(".").lower()


def _accuracy(outcomes: Iterable[tuple[bool, str | None]], caller: str) -> dict[str, float]:
    overall: list[bool] = []
    per_group: dict[str, list[bool]] = defaultdict(list)
    for correct, group in outcomes:
        overall.append(correct)
        if group is not None:
            per_group[group].append(correct)
    if not overall:
        raise ValueError(f"{caller} got no samples to score")
    metrics = {"accuracy": 100.0 * sum(overall) / len(overall)}
    for group, values in sorted(per_group.items()):
        metrics[f"accuracy/{group}"] = 100.0 * sum(values) / len(values)
    metrics["num_samples"] = float(len(overall))
    return metrics


def score_exact_match(samples: Iterable[Mapping], group_key: str | None = "category") -> dict[str, float]:
    """Exact-match accuracy (percent) overall and per group, both sides through `normalize_short_answer`.

    Each sample has `prediction` and `answer` (str), and `group_key` (e.g. "category") when per-group accuracy is
    wanted. Returns {"accuracy", "accuracy/<group>"..., "num_samples"}.
    """
    outcomes = []
    for sample in samples:
        correct = normalize_short_answer(sample["prediction"]) == normalize_short_answer(str(sample["answer"]))
        group = None if group_key is None or sample.get(group_key) is None else str(sample[group_key])
        outcomes.append((correct, group))
    return _accuracy(outcomes, "score_exact_match")


def score_gqa(samples: Iterable[Mapping], lenient: bool = False) -> dict[str, float]:
    """GQA accuracy (percent): `gqa_prediction` of each `prediction` against its `answer` string as given; with
    `lenient`, `score_exact_match` instead. Returns {"accuracy", "num_samples"}."""
    if lenient:
        return score_exact_match(samples, group_key=None)
    outcomes = [(gqa_prediction(sample["prediction"]) == str(sample["answer"]), None) for sample in samples]
    return _accuracy(outcomes, "score_gqa")
