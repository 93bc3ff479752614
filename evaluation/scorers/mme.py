"""MME: yes/no questions, two per image, scored per subtask as acc + acc+ on the official 0-200 scale.

acc is the percentage of questions answered right, acc+ the percentage of images whose questions are all answered
right; a subtask scores acc + acc+. Perception sums its ten subtasks (max 2000), cognition its four (max 800).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping

__all__ = ["PERCEPTION_SUBTASKS", "COGNITION_SUBTASKS", "mme_answer", "score_mme"]

PERCEPTION_SUBTASKS = (
    "existence", "count", "position", "color", "posters", "celebrity", "scene", "landmark", "artwork", "OCR",
)  # fmt: skip
COGNITION_SUBTASKS = ("commonsense_reasoning", "numerical_calculation", "text_translation", "code_reasoning")


def mme_answer(text: str) -> str:
    """Map a free-form answer to "yes", "no" or "other" like MME's evaluation tool.

    The whole answer is lower-cased and stripped of periods; an exact "yes"/"no" is taken as is, otherwise the first
    four characters decide ("yes" before "no"), and anything else is "other" (always wrong).
    """
    answer = text.lower().strip().replace(".", "")
    if answer in ("yes", "no"):
        return answer
    prefix = answer[:4]
    if "yes" in prefix:
        return "yes"
    if "no" in prefix:
        return "no"
    return "other"


def score_mme(samples: Iterable[Mapping]) -> dict[str, float]:
    """MME scores per subtask plus perception and cognition totals.

    Each sample has `prediction` (free text), `answer` ("Yes"/"No"), `category` (the subtask, e.g. "existence") and
    `image` (what identifies the image the question is about, shared by its two questions).
    Returns {"<subtask>", "<subtask>/acc", "<subtask>/acc_plus"..., "perception", "cognition", "total",
    "num_samples"}.
    """
    # subtask -> image -> list of per-question correctness
    results: dict[str, dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
    for sample in samples:
        gold = str(sample["answer"]).strip().lower()
        if gold not in ("yes", "no"):
            raise ValueError(
                f"MME answer of question {sample.get('question_id')!r} is {sample['answer']!r}, not Yes/No"
            )
        results[str(sample["category"])][str(sample["image"])].append(mme_answer(sample["prediction"]) == gold)
    if not results:
        raise ValueError("score_mme got no samples to score")
    known = set(PERCEPTION_SUBTASKS) | set(COGNITION_SUBTASKS)
    unknown = sorted(set(results) - known)
    if unknown:
        raise ValueError(f"unknown MME subtasks {unknown}; expected names from {sorted(known)}")
    metrics: dict[str, float] = {}
    for subtask, images in results.items():
        answers = [correct for per_image in images.values() for correct in per_image]
        acc = 100.0 * sum(answers) / len(answers)
        acc_plus = 100.0 * sum(all(per_image) for per_image in images.values()) / len(images)
        metrics[f"{subtask}/acc"] = acc
        metrics[f"{subtask}/acc_plus"] = acc_plus
        metrics[subtask] = acc + acc_plus
    metrics["perception"] = sum(metrics.get(name, 0.0) for name in PERCEPTION_SUBTASKS)
    metrics["cognition"] = sum(metrics.get(name, 0.0) for name in COGNITION_SUBTASKS)
    metrics["total"] = metrics["perception"] + metrics["cognition"]
    metrics["num_samples"] = float(sum(len(v) for images in results.values() for v in images.values()))
    return dict(sorted(metrics.items()))
