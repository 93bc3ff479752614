"""Multiple-choice answers read from free text: option-letter parsing and ScienceQA-IMG accuracy.

LLaVA-style prompts ask for "the option's letter from the given choices directly", so a good answer is "B"; the
parser also accepts "B.", "(B)", "B. a cat", "The answer is B." and the text of an option itself. Anything else is
unparsed and counts as wrong.
"""

from __future__ import annotations

import re
import string
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

__all__ = ["OPTION_LETTERS", "parse_option_letter", "score_multiple_choice"]

OPTION_LETTERS = string.ascii_uppercase
_LEADING_LETTER = re.compile(r"^\(?([A-Z])(?:\)|\.|:|,|$)")
_STATED_LETTER = re.compile(r"\b(?i:answer|option|choice) is:?\s*\(?([A-Z])\b")
_ANSWER_FIELD = re.compile(r"^(?i:answer)\s*:\s*\(?([A-Z])\b")


def _clean_option_text(text: str) -> str:
    return " ".join(text.lower().strip().rstrip(".").split())


def parse_option_letter(text: str, options: Sequence[str]) -> str | None:
    """The option letter ("A", "B", ...) a free-form answer picks among `options`, or None when it picks none.

    `options` are the option texts in letter order; a letter beyond them is not accepted.
    """
    valid = OPTION_LETTERS[: len(options)]
    answer = text.strip()
    for pattern in (_LEADING_LETTER, _ANSWER_FIELD, _STATED_LETTER):
        found = pattern.search(answer)
        if found and found.group(1) in valid:
            return found.group(1)
    cleaned = _clean_option_text(answer)
    matching = [
        letter
        for letter, option in zip(valid, options, strict=True)
        if cleaned and cleaned == _clean_option_text(option)
    ]
    return matching[0] if len(matching) == 1 else None


def score_multiple_choice(samples: Iterable[Mapping], group_key: str | None = "category") -> dict[str, float]:
    """Option-letter accuracy (percent), e.g. ScienceQA-IMG.

    Each sample has `prediction` (free text), `answer` (the gold letter), `options` (option texts in letter order)
    and optionally `group_key`. Returns {"accuracy", "accuracy/<group>"..., "unparsed", "num_samples"}; "unparsed"
    is the number of answers that named no option (counted wrong).
    """
    overall: list[bool] = []
    per_group: dict[str, list[bool]] = defaultdict(list)
    unparsed = 0
    for sample in samples:
        letter = parse_option_letter(sample["prediction"], sample["options"])
        unparsed += letter is None
        correct = letter == str(sample["answer"]).strip().upper()
        overall.append(correct)
        if group_key is not None and sample.get(group_key) is not None:
            per_group[str(sample[group_key])].append(correct)
    if not overall:
        raise ValueError("score_multiple_choice got no samples to score")
    metrics = {"accuracy": 100.0 * sum(overall) / len(overall)}
    for group, values in sorted(per_group.items()):
        metrics[f"accuracy/{group}"] = 100.0 * sum(values) / len(values)
    metrics["unparsed"] = float(unparsed)
    metrics["num_samples"] = float(len(overall))
    return metrics
