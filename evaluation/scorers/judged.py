"""Scores of the judge-graded benchmarks (LLaVA-Bench in-the-wild, MM-Vet), computed from the judge's replies.

The prompts and the calls to the judge live in `evaluation.judge`; these functions only read the replies.
A reply that cannot be read is counted in "unparsed": LLaVA-Bench leaves it out of the averages, MM-Vet grades it
0.0 as its official grader does once its retries are spent.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping

__all__ = ["parse_llava_bench_review", "score_llava_bench", "parse_mmvet_grade", "score_mmvet"]


def parse_llava_bench_review(review: str) -> tuple[float, float] | None:
    """The (reference, model) scores on the first line of a LLaVA-Bench review ("8 6" or "8, 6"), else None."""
    values = review.split("\n")[0].replace(",", " ").split()
    if len(values) != 2:
        return None
    try:
        return float(values[0]), float(values[1])
    except ValueError:
        return None


def score_llava_bench(samples: Iterable[Mapping]) -> dict[str, float]:
    """LLaVA-Bench relative scores: the model's mean judge score over the reference answer's, in percent.

    Each sample has `review` (the judge's reply) and `category` (conv, detail, complex). Returns
    {"relative_score", "relative_score/<category>", "reference_score", "model_score", "unparsed", "num_samples"};
    the absolute scores are on the judge's 1-10 scale.
    """
    pairs: dict[str, list[tuple[float, float]]] = defaultdict(list)
    unparsed = 0
    count = 0
    for sample in samples:
        count += 1
        scores = parse_llava_bench_review(sample["review"])
        if scores is None:
            unparsed += 1
            continue
        pairs[str(sample.get("category") or "all")].append(scores)
    if not count:
        raise ValueError("score_llava_bench got no samples to score")
    every = [pair for values in pairs.values() for pair in values]
    metrics: dict[str, float] = {}
    if every:
        reference = sum(pair[0] for pair in every) / len(every)
        model = sum(pair[1] for pair in every) / len(every)
        metrics.update(relative_score=100.0 * model / reference, reference_score=reference, model_score=model)
    for category, values in sorted(pairs.items()):
        reference = sum(pair[0] for pair in values) / len(values)
        metrics[f"relative_score/{category}"] = 100.0 * sum(pair[1] for pair in values) / len(values) / reference
    metrics["unparsed"] = float(unparsed)
    metrics["num_samples"] = float(count)
    return metrics


def parse_mmvet_grade(reply: str) -> float | None:
    """The correctness in [0, 1] at the start of an MM-Vet grading reply ("0.7"), else None."""
    words = reply.strip().split(" ")
    try:
        grade = float(words[0].strip())
    except ValueError:
        return None
    return grade if 0.0 <= grade <= 1.0 else None


def score_mmvet(samples: Iterable[Mapping]) -> dict[str, float]:
    """MM-Vet scores (percent): the mean grade overall and per capability.

    Each sample has `grade` (the parsed correctness in [0, 1], or None when no reply could be read: graded 0.0) and
    `capabilities` (e.g. ["rec", "ocr"]); a question counts towards each of its capabilities.
    Returns {"total", "capability/<name>"..., "unparsed", "num_samples"}.
    """
    grades: list[float] = []
    per_capability: dict[str, list[float]] = defaultdict(list)
    unparsed = 0
    count = 0
    for sample in samples:
        count += 1
        unparsed += sample["grade"] is None
        grade = 0.0 if sample["grade"] is None else float(sample["grade"])
        grades.append(grade)
        for capability in sample.get("capabilities") or ():
            per_capability[capability].append(grade)
    if not count:
        raise ValueError("score_mmvet got no samples to score")
    metrics = {"total": 100.0 * sum(grades) / len(grades)}
    for capability, values in sorted(per_capability.items()):
        metrics[f"capability/{capability}"] = 100.0 * sum(values) / len(values)
    metrics["unparsed"] = float(unparsed)
    metrics["num_samples"] = float(count)
    return metrics
