"""MMBench circular evaluation.

A question with n options is asked n times, its options rotated by one place each time (the gold letter moves with
its option, as in LLaVA's `llava/eval/model_vqa_mmbench.py`); it counts as right only when every rotation is answered
right. Answers are read with the forgiving `parse_option_letter`: MMBench's own numbers come from its evaluation
server, whose answer matching (heuristics with a language-model fallback) is not reproduced offline.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

from .choice import OPTION_LETTERS, parse_option_letter

__all__ = ["rotate_options", "score_mmbench"]


def rotate_options(options: Sequence[str], answer: str | None, shift: int) -> tuple[list[str], str | None]:
    """Options rotated left by `shift` places (["a", "b", "c"], 1 -> ["b", "c", "a"]) and the moved gold letter."""
    count = len(options)
    rotated = list(options[shift:]) + list(options[:shift])
    if answer is None:
        return rotated, None
    gold_index = OPTION_LETTERS.index(answer.strip().upper())
    if gold_index >= count:
        raise ValueError(f"gold answer {answer!r} is beyond the {count} options {list(options)}")
    return rotated, OPTION_LETTERS[(gold_index - shift) % count]


def score_mmbench(samples: Iterable[Mapping]) -> dict[str, float]:
    """Circular accuracy (percent) overall and per category, plus the accuracy of the unrotated pass.

    Each sample is one rotation: `prediction`, `answer` (gold letter of this rotation), `options` (this rotation's
    option texts), `index` (the original question's index, shared by its rotations), `round` (0 = unrotated) and
    `category`. Returns {"circular_accuracy", "circular_accuracy/<category>"..., "single_pass_accuracy",
    "num_questions", "num_samples"}.
    """
    rounds: dict[str, list[bool]] = defaultdict(list)
    first_round: dict[str, bool] = {}
    category_of: dict[str, str] = {}
    num_samples = 0
    for sample in samples:
        index = str(sample["index"])
        correct = parse_option_letter(sample["prediction"], sample["options"]) == str(sample["answer"]).upper()
        rounds[index].append(correct)
        if int(sample.get("round", 0)) == 0:
            first_round[index] = correct
        category_of[index] = str(sample.get("category") or "all")
        num_samples += 1
    if not rounds:
        raise ValueError("score_mmbench got no samples to score")
    circular = {index: all(results) for index, results in rounds.items()}
    metrics = {"circular_accuracy": 100.0 * sum(circular.values()) / len(circular)}
    per_category: dict[str, list[bool]] = defaultdict(list)
    for index, correct in circular.items():
        per_category[category_of[index]].append(correct)
    for category, values in sorted(per_category.items()):
        metrics[f"circular_accuracy/{category}"] = 100.0 * sum(values) / len(values)
    if first_round:
        metrics["single_pass_accuracy"] = 100.0 * sum(first_round.values()) / len(first_round)
    metrics["num_questions"] = float(len(circular))
    metrics["num_samples"] = float(num_samples)
    return metrics
