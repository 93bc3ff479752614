"""VQA accuracy (VQAv2, VizWiz, TextVQA) with the answer normalisation of LLaVA's reference evaluation.

Normalisation follows `EvalAIAnswerProcessor` in LLaVA's `llava/eval/m4c_evaluator.py`, which TextVQA's evaluator
and the VQAv2 / VizWiz upload scripts run: a word step first (lower-case, commas and question marks deleted, "'s" split
off its word), then punctuation handling, number words to digits, articles dropped and apostrophe-less contractions
given their apostrophe back. A prediction then scores min(#humans who gave it / 3, 1), averaged over the
leave-one-annotator-out subsets of the human answers (`TextVQAAccuracyEvaluator`).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

__all__ = ["normalize_vqa_answer", "vqa_accuracy", "score_vqa"]

_NUMBER_WORDS = {
    "none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4",
    "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10",
}  # fmt: skip
_ARTICLES = frozenset({"a", "an", "the"})
# Punctuation the reference removes (or turns into a space); apostrophes and periods are handled apart.
_PUNCTUATION = (
    ";",
    "/",
    "[",
    "]",
    '"',
    "{",
    "}",
    "(",
    ")",
    "=",
    "+",
    "\\",
    "_",
    "-",
    ">",
    "<",
    "@",
    "`",
    ",",
    "?",
    "!",
)
# A period is dropped unless a digit follows it ("2.5" stays); the reference pattern's look-behind never fires.
_PERIOD = re.compile(r"\.(?!\d)")
# The reference hands `re.UNICODE` (32) to `sub` where the count goes, so at most 32 periods are dropped.
_MAX_PERIODS_DROPPED = 32
_DIGIT_COMMAS_DIGIT = re.compile(r"(?<=\d),+(?=\d)")

# The reference contraction table, written as canonical forms: each key of that table is a canonical form with
# exactly one apostrophe left out. The table's few irregular entries are listed after it.
_CANONICAL_CONTRACTIONS = (
    "ain't aren't can't could've couldn't couldn't've didn't doesn't don't hadn't hadn't've hasn't haven't he'd "
    "he'd've he's how'd how'll how's isn't it'd it'd've it'll ma'am mightn't mightn't've might've mustn't must've "
    "needn't not've o'clock oughtn't shan't she'd've should've shouldn't shouldn't've somebody'd've somebody'll "
    "somebody's someone'd someone'd've someone'll someone's something'd something'd've something'll that's "
    "there'd there'd've there're there's they'd they'd've they'll they're they've wasn't we'd've we've weren't "
    "what'll what're what's what've when's where'd where's where've who'd who'd've who'll who's who've why'll "
    "why're why's won't would've wouldn't wouldn't've y'all y'all'll y'all'd've you'd you'd've you'll you're you've"
).split()
_IRREGULAR_CONTRACTIONS = {
    # Capitalised keys in the reference table; they never match lower-cased text but are kept for fidelity.
    "Id've": "I'd've", "I'dve": "I'd've", "Im": "I'm", "Ive": "I've",
    "let's": "let's", "she's": "she's", "twas": "'twas", "somebody'd": "somebodyd",
    "ow's'at": "'ow's'at", "'ows'at": "'ow's'at", "'ow'sat": "'ow's'at",
}  # fmt: skip


def _contraction_table() -> dict[str, str]:
    table: dict[str, str] = {}
    for canonical in _CANONICAL_CONTRACTIONS:
        parts = canonical.split("'")
        for dropped in range(1, len(parts)):
            # The form written without the apostrophe in front of parts[dropped]: "dont", "couldnt've", "couldn'tve".
            table["'".join(parts[: dropped - 1] + [parts[dropped - 1] + parts[dropped]] + parts[dropped + 1 :])] = (
                canonical
            )
    table.update(_IRREGULAR_CONTRACTIONS)
    return table


_CONTRACTIONS = _contraction_table()


def _split_words(text: str) -> str:
    """The processor's word step: lower-case, delete commas and question marks, split "'s" from its word."""
    return text.lower().replace(",", "").replace("?", "").replace("'s", " 's").strip()


def _strip_punctuation(text: str) -> str:
    """Deletes each mark that touches a space in `text` as given (or every mark, when `text` holds a digit-comma-digit
    group), and turns the others into spaces; the space test always looks at the text before any mark was handled."""
    delete_all = _DIGIT_COMMAS_DIGIT.search(text) is not None
    edited = text
    for mark in _PUNCTUATION:
        touches_space = f"{mark} " in text or f" {mark}" in text
        edited = edited.replace(mark, "" if touches_space or delete_all else " ")
    return _PERIOD.sub("", edited, count=_MAX_PERIODS_DROPPED)


def normalize_vqa_answer(answer: str) -> str:
    """Normalise an answer like the reference processor ("Two dogs." -> "2 dogs", "red,white" -> "redwhite",
    "What's up" -> "what 's up", "dont" -> "don't")."""
    text = _split_words(answer).replace("\n", " ").replace("\t", " ").strip()
    text = _strip_punctuation(text)
    words = [_NUMBER_WORDS.get(word, word) for word in text.lower().split()]
    words = [_CONTRACTIONS.get(word, word) for word in words if word not in _ARTICLES]
    return " ".join(words)


def vqa_accuracy(prediction: str, human_answers: Sequence[str]) -> float:
    """VQA accuracy in [0, 1] of one prediction against the human answers (normally ten).

    For each annotator, the prediction scores min(#other annotators who gave it / 3, 1); the result is the mean
    over annotators. With ten answers, a prediction given by three or more humans scores 1.
    """
    if not human_answers:
        raise ValueError("vqa_accuracy needs at least one human answer, got none")
    predicted = normalize_vqa_answer(prediction)
    humans = [normalize_vqa_answer(answer) for answer in human_answers]
    matches = sum(answer == predicted for answer in humans)
    per_annotator = [min(1.0, (matches - (answer == predicted)) / 3.0) for answer in humans]
    return sum(per_annotator) / len(per_annotator)


def score_vqa(samples: Iterable[Mapping], empty_answer: str | None = None) -> dict[str, float]:
    """Mean VQA accuracy (percent) overall and per answer type.

    Each sample has `prediction` (str), `answers` (the human answers, list of str) and optionally `answer_type`
    ("yes/no", "number", "other", "unanswerable"). `empty_answer`, when given, replaces a prediction that normalises
    to nothing (a forgiving VizWiz reading, "unanswerable"; the reference scores the empty answer as it is).
    Returns {"accuracy", "accuracy/<answer_type>"..., "num_samples"}.
    """
    per_type: dict[str, list[float]] = defaultdict(list)
    overall: list[float] = []
    for sample in samples:
        prediction = sample["prediction"]
        if empty_answer is not None and not normalize_vqa_answer(prediction):
            prediction = empty_answer
        accuracy = vqa_accuracy(prediction, sample["answers"])
        overall.append(accuracy)
        if sample.get("answer_type"):
            per_type[sample["answer_type"]].append(accuracy)
    if not overall:
        raise ValueError("score_vqa got no samples to score")
    metrics = {"accuracy": 100.0 * sum(overall) / len(overall)}
    for answer_type, values in sorted(per_type.items()):
        metrics[f"accuracy/{answer_type}"] = 100.0 * sum(values) / len(values)
    metrics["num_samples"] = float(len(overall))
    return metrics
