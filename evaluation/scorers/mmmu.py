"""MMMU: multiple-choice and open questions, answers parsed from free text by MMMU's own rules (`eval_utils.py`).

Multiple choice: the edge marks , . ! ? ; : ' are stripped one after another, in that order; then a letter in
brackets "(B)" wins, then a bare letter " B ", then (for answers longer than five words) the text of an option; when
several match, the one mentioned last counts; when none does, MMMU guesses at random. Here the guess is drawn from a
generator seeded with the question id, so a score is reproducible (MMMU seeds one generator for the whole run, so its
guesses depend on the order the questions are scored in).
Open questions: the parts after "is", "so", "thus", "answer"... and every number in them are compared with the gold
answer (numbers rounded to two decimals, text by containment); when no line yields a non-empty part, the whole
response is the part ("5 =" is read as "5 =", hence the number 5).
"""

from __future__ import annotations

import random
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

from .choice import OPTION_LETTERS

__all__ = ["parse_mmmu_choice", "parse_mmmu_open", "mmmu_open_correct", "score_mmmu"]

_EDGE_MARKS = (",", ".", "!", "?", ";", ":", "'")
_KEY_INDICATORS = ("could be ", "so ", "is ", "thus ", "therefore ", "final ", "answer ", "result ")
_NUMBER_WITH_COMMAS = re.compile(r"-?\b\d{1,3}(?:,\d{3})+\b")
_NUMBER_SCIENTIFIC = re.compile(r"-?\d+(?:\.\d+)?[eE][+-]?\d+")
_NUMBER_SIMPLE = re.compile(r"-?(?:\d+\.\d+|\.\d+|\d+\b)(?![eE][+-]?\d+)(?![,\d])")
_TRIVIAL_PARTS = (":", ",", ".", "!", "?", ";", "'")


def parse_mmmu_choice(response: str, options: Sequence[str], seed: str = "") -> str:
    """The option letter an answer picks among `options` (texts in letter order); a seeded guess when none matches."""
    letters = OPTION_LETTERS[: len(options)]
    for mark in _EDGE_MARKS:
        response = response.strip(mark)
    padded = f" {response} "
    candidates = [letter for letter in letters if f"({letter})" in padded]
    position: dict[str, int] = {letter: padded.rfind(f"({letter})") for letter in candidates}
    if not candidates:
        candidates = [letter for letter in letters if f" {letter} " in padded]
        position = {letter: padded.rfind(f" {letter} ") for letter in candidates}
    if not candidates and len(padded.split()) > 5:
        lowered = padded.lower()
        candidates = [letter for letter, text in zip(letters, options, strict=True) if text.lower() in lowered]
        position = {letter: lowered.rfind(options[letters.index(letter)].lower()) for letter in candidates}
    if not candidates:
        return random.Random(seed).choice(letters)
    return max(candidates, key=lambda letter: position[letter])


def _numbers_in(text: str) -> list[str]:
    return _NUMBER_WITH_COMMAS.findall(text) + _NUMBER_SCIENTIFIC.findall(text) + _NUMBER_SIMPLE.findall(text)


def _normalize(value: str) -> list[str | float]:
    """A number becomes a float rounded to 2 places; a one-character string gets a space on either side."""
    value = value.strip()
    try:
        return [round(float(value.replace(",", "")), 2)]
    except ValueError:
        pass
    value = value.lower()
    return [f" {value}", f"{value} "] if len(value) == 1 else [value]


def _key_tail(line: str, indicators: Sequence[str]) -> str | None:
    """The tail after the key indicators of one line, picked as MMMU does: indicators are tried in order, a tail
    replaces the pick when it is shorter or when the pick so far is empty."""
    picked: str | None = None
    for indicator in indicators:
        if indicator in line:
            tail = line.split(indicator)[-1].strip()
            if not picked or len(tail) < len(picked):
                picked = tail
    return picked


def _key_parts(response: str) -> list[str]:
    """The key tail of each line that has a non-empty, non-trivial one; the whole answer when no line has."""
    text = response.strip().strip(".").lower()
    # MMMU splits on ". " before a capital letter too, but only after lower-casing, so in effect on new lines only.
    lines = text.split("\n")
    parts = []
    for number, line in enumerate(lines):
        indicators = _KEY_INDICATORS + (("=",) if number == len(lines) - 1 else ())
        tail = _key_tail(line, indicators)
        if tail and tail not in _TRIVIAL_PARTS:
            parts.append(tail)
    return parts or [text]


def parse_mmmu_open(response: str) -> list[str | float]:
    """Candidate answers (normalised strings and numbers) read from an open-question response."""
    parts = _key_parts(response)
    candidates = parts + [number for part in parts for number in _numbers_in(part)]
    return list({normalised for value in candidates for normalised in _normalize(value)})


def mmmu_open_correct(gold: str | Sequence[str], candidates: Sequence[str | float]) -> bool:
    """True when a candidate equals a gold number or contains a gold string."""
    golds = [gold] if isinstance(gold, str) else list(gold)
    normalised = [value for answer in golds for value in _normalize(str(answer))]
    for candidate in candidates:
        if isinstance(candidate, str):
            if any(isinstance(answer, str) and answer in candidate for answer in normalised):
                return True
        elif candidate in normalised:
            return True
    return False


def score_mmmu(samples: Iterable[Mapping]) -> dict[str, float]:
    """MMMU accuracy (percent) overall and per subject.

    Each sample has `question_id`, `prediction`, `answer` (gold letter for multiple choice; a string or list of
    strings for open questions), `question_type` ("multiple-choice" or "open"), `options` (texts, for multiple
    choice) and optionally `subject`. Returns {"accuracy", "accuracy/<subject>"..., "num_samples"}.
    """
    overall: list[bool] = []
    per_subject: dict[str, list[bool]] = defaultdict(list)
    for sample in samples:
        if sample.get("question_type", "multiple-choice") == "multiple-choice":
            letter = parse_mmmu_choice(sample["prediction"], sample["options"], seed=str(sample["question_id"]))
            correct = letter == str(sample["answer"]).strip().upper()
        else:
            correct = mmmu_open_correct(sample["answer"], parse_mmmu_open(sample["prediction"]))
        overall.append(correct)
        if sample.get("subject"):
            per_subject[str(sample["subject"])].append(correct)
    if not overall:
        raise ValueError("score_mmmu got no samples to score")
    metrics = {"accuracy": 100.0 * sum(overall) / len(overall)}
    for subject, values in sorted(per_subject.items()):
        metrics[f"accuracy/{subject}"] = 100.0 * sum(values) / len(values)
    metrics["num_samples"] = float(len(overall))
    return metrics
