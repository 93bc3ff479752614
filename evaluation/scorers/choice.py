"""Multiple-choice answers read from free text: option-letter parsing and ScienceQA-IMG accuracy.

Two readings. `parse_scienceqa_answer` is the reference one (`eval_science_qa.py` of LLaVA-1.5): the answer is exactly
an option letter, starts with "B. ", or holds exactly one "The answer is B" followed by any character; anything else
fails. `parse_option_letter` is forgiving: it also takes "B.", "(B)", "B:", "Answer: B", a lower-case letter, the first
of two stated answers and the text of an option itself; MMBench's offline scoring and `--lenient-parsing` use it.
An answer that names no option counts as wrong either way.
"""

from __future__ import annotations

import re
import string
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

__all__ = ["OPTION_LETTERS", "parse_option_letter", "parse_scienceqa_answer", "score_multiple_choice"]

OPTION_LETTERS = string.ascii_uppercase
_LEADING_LETTER = re.compile(r"^\(?([A-Z])(?:\)|\.|:|,|$)")
_STATED_LETTER = re.compile(r"\b(?i:answer|option|choice) is:?\s*\(?([A-Z])\b")
_ANSWER_FIELD = re.compile(r"^(?i:answer)\s*:\s*\(?([A-Z])\b")

# The reference knows five letters only, and its pattern wants one more character (any but a line break) after the
# letter: "The answer is BA." reads as B, a bare "The answer is B" at the very end reads as nothing.
_SCIENCEQA_LETTERS = ("A", "B", "C", "D", "E")
_SCIENCEQA_STATED = re.compile(r"The answer is ([A-Z]).")


def _clean_option_text(text: str) -> str:
    return " ".join(text.lower().strip().rstrip(".").split())


def parse_scienceqa_answer(text: str, num_options: int) -> str | None:
    """The option letter the ScienceQA reference parser reads from `text`, or None where it fails.

    The text is taken as written (no trimming): a bare letter, a letter followed by ". ", or a single
    "The answer is X" + one character. A letter beyond the `num_options` options is a failure.
    """
    if text in _SCIENCEQA_LETTERS:
        letter = text
    elif len(text) >= 3 and text[0] in _SCIENCEQA_LETTERS and text[1:3] == ". ":
        letter = text[0]
    else:
        stated = _SCIENCEQA_STATED.findall(text)
        letter = stated[0] if len(stated) == 1 else None
    return letter if letter in _SCIENCEQA_LETTERS[:num_options] else None


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


def score_multiple_choice(
    samples: Iterable[Mapping], group_key: str | None = "category", lenient: bool = False
) -> dict[str, float]:
    """Option-letter accuracy (percent), e.g. ScienceQA-IMG: answers read by `parse_scienceqa_answer`, or with
    `lenient` by `parse_option_letter`.

    Each sample has `prediction` (free text), `answer` (the gold letter), `options` (option texts in letter order)
    and optionally `group_key`. Returns {"accuracy", "accuracy/<group>"..., "unparsed", "num_samples"}; "unparsed"
    is the number of answers that named no option (counted wrong).
    """
    overall: list[bool] = []
    per_group: dict[str, list[bool]] = defaultdict(list)
    unparsed = 0
    for sample in samples:
        if lenient:
            letter = parse_option_letter(sample["prediction"], sample["options"])
        else:
            letter = parse_scienceqa_answer(sample["prediction"], len(sample["options"]))
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
