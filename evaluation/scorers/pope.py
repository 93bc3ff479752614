"""POPE: yes/no object-hallucination probing, scored per split (random, popular, adversarial).

An answer counts as "no" when its first sentence contains the word "no", "No" or "not", and as "yes" otherwise (the
rule of LLaVA's POPE evaluation); "yes" is the positive class.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping

__all__ = ["pope_answer", "binary_metrics", "score_pope"]


def pope_answer(text: str) -> str:
    """Map a free-form answer to "yes" or "no"."""
    first_sentence = text.split(".")[0].replace(",", "")
    words = first_sentence.split(" ")
    return "no" if any(word in words for word in ("no", "No", "not")) else "yes"


def binary_metrics(predictions: list[str], labels: list[str]) -> dict[str, float]:
    """Accuracy, precision, recall, F1 and yes-ratio (percent) of yes/no predictions against yes/no labels."""
    pairs = list(zip(predictions, labels, strict=True))
    true_pos = sum(pred == "yes" and gold == "yes" for pred, gold in pairs)
    false_pos = sum(pred == "yes" and gold == "no" for pred, gold in pairs)
    true_neg = sum(pred == "no" and gold == "no" for pred, gold in pairs)
    false_neg = sum(pred == "no" and gold == "yes" for pred, gold in pairs)
    precision = true_pos / (true_pos + false_pos) if true_pos + false_pos else 0.0
    recall = true_pos / (true_pos + false_neg) if true_pos + false_neg else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "accuracy": 100.0 * (true_pos + true_neg) / len(pairs),
        "precision": 100.0 * precision,
        "recall": 100.0 * recall,
        "f1": 100.0 * f1,
        "yes_ratio": 100.0 * (true_pos + false_pos) / len(pairs),
    }


def score_pope(samples: Iterable[Mapping]) -> dict[str, float]:
    """POPE metrics per split and their mean F1 (the number LLaVA-style papers report).

    Each sample has `prediction` (free text), `label` ("yes"/"no") and `category` (the split: random, popular,
    adversarial). Returns {"<split>/accuracy", "<split>/precision", "<split>/recall", "<split>/f1",
    "<split>/yes_ratio"..., "f1", "accuracy", "num_samples"} where the bare "f1" and "accuracy" are split means.
    """
    by_split: dict[str, tuple[list[str], list[str]]] = defaultdict(lambda: ([], []))
    for sample in samples:
        label = str(sample["label"]).strip().lower()
        if label not in ("yes", "no"):
            raise ValueError(f"POPE label of question {sample.get('question_id')!r} is {sample['label']!r}, not yes/no")
        predictions, labels = by_split[str(sample.get("category") or "all")]
        predictions.append(pope_answer(sample["prediction"]))
        labels.append(label)
    if not by_split:
        raise ValueError("score_pope got no samples to score")
    metrics: dict[str, float] = {}
    for split, (predictions, labels) in sorted(by_split.items()):
        for name, value in binary_metrics(predictions, labels).items():
            metrics[f"{split}/{name}"] = value
    metrics["f1"] = sum(metrics[f"{split}/f1"] for split in by_split) / len(by_split)
    metrics["accuracy"] = sum(metrics[f"{split}/accuracy"] for split in by_split) / len(by_split)
    metrics["num_samples"] = float(sum(len(labels) for _, labels in by_split.values()))
    return metrics
