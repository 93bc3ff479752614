"""Read LLaVA-format conversation files into TRL's conversational vision format.

A LLaVA record is `{"id": ..., "image": "rel/path.jpg", "conversations": [{"from": "human", "value": "<image>\\n..."},
{"from": "gpt", "value": "..."}, ...]}`; `image` may also be a list of paths, or absent for text-only records. Files
are a JSON array (LLaVA's own releases) or JSON Lines.

The result is a `datasets.Dataset` with columns `id`, `messages` (HF chat format: the images of a human turn become
`{"type": "image"}` parts at the start of that turn, like LLaVA's preprocessing) and `images` (an `Image` feature
holding paths: files are opened only when a batch is built).

Bad records are never dropped silently: each is reported with its id, its line number and the reason, logged, and
counted in the returned `DataReport`; with `strict=True` any bad record raises `DataError`.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
from PIL import Image, UnidentifiedImageError

logger = logging.getLogger(__name__)

IMAGE_PLACEHOLDER = "<image>"
ROLES = {"human": "user", "gpt": "assistant"}

FEATURES = datasets.Features(
    {
        "id": datasets.Value("string"),
        "messages": datasets.List(
            {
                "role": datasets.Value("string"),
                "content": datasets.List({"type": datasets.Value("string"), "text": datasets.Value("string")}),
            }
        ),
        "images": datasets.List(datasets.Image(mode="RGB")),
    }
)


class DataError(ValueError):
    """A data file that cannot be read, or bad records under `strict=True`."""


@dataclass(frozen=True)
class RecordError:
    """One bad record: where it starts in the file, its id (if it has one) and why it was rejected."""

    line: int
    record_id: str | None
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}, id {self.record_id!r}: {self.reason}"


@dataclass
class DataReport:
    """What a read produced: the number of good records and every rejected one."""

    path: Path
    num_good: int = 0
    errors: list[RecordError] = field(default_factory=list)

    @property
    def num_bad(self) -> int:
        return len(self.errors)

    def summary(self) -> str:
        return f"{self.path}: {self.num_good} good records, {self.num_bad} bad"


def _iter_json_array(text: str, path: Path) -> Iterator[tuple[int, Any]]:
    """Yields (line number, decoded value) for each element of a top-level JSON array, keeping element positions."""
    decoder = json.JSONDecoder()
    whitespace = re.compile(r"\s*")
    line, counted_up_to = 1, 0

    def line_at(position: int) -> int:
        nonlocal line, counted_up_to
        line += text.count("\n", counted_up_to, position)
        counted_up_to = position
        return line

    position = whitespace.match(text, 0).end()
    if text[position : position + 1] != "[":
        raise DataError(
            f"{path}: expected a JSON array of records (or a .jsonl file), found {text[position : position + 20]!r}"
        )
    position = whitespace.match(text, position + 1).end()
    if text[position : position + 1] == "]":
        return
    while True:
        start_line = line_at(position)
        try:
            value, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError as error:
            raise DataError(f"{path}: invalid JSON at line {error.lineno}, column {error.colno}: {error.msg}") from None
        yield start_line, value
        position = whitespace.match(text, position).end()
        separator = text[position : position + 1]
        if separator == "]":
            return
        if separator != ",":
            raise DataError(
                f"{path}: expected ',' or ']' between records at line {line_at(position)}, found {separator!r}"
            )
        position = whitespace.match(text, position + 1).end()


def _iter_records(path: Path) -> Iterator[tuple[int, Any, str | None]]:
    """Yields (line number, record or None, JSON error or None) for a .json array or a .jsonl file."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                yield number, json.loads(line), None
            except json.JSONDecodeError as error:
                yield number, None, f"invalid JSON: {error.msg} (column {error.colno})"
    else:
        for number, value in _iter_json_array(text, path):
            yield number, value, None


def _image_error(path: Path) -> str | None:
    """Returns why `path` cannot be used as an image, or None when it opens and its data checks out."""
    if not path.is_file():
        return f"image file not found: {path}"
    try:
        with Image.open(path) as image:
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        return f"unreadable image {path}: {error}"
    return None


def _split_turn(value: str) -> tuple[int, str]:
    """Returns (number of `<image>` placeholders, the text without them) for one human turn."""
    count = value.count(IMAGE_PLACEHOLDER)
    return count, value.replace(IMAGE_PLACEHOLDER, "").strip()


def convert_record(record: Any, image_folder: Path | None, verify_images: bool = True) -> dict[str, Any]:
    """Converts one LLaVA record to `{"id", "messages", "images"}` (image paths).

    Raises `ValueError` with the reason when the record is unusable (the reader reports it as a bad record)."""
    if not isinstance(record, dict):
        raise ValueError(f"a record must be a JSON object, got {type(record).__name__}")
    conversations = record.get("conversations")
    if not isinstance(conversations, list) or not conversations:
        raise ValueError("'conversations' must be a non-empty list of turns")
    image_field = record.get("image")
    image_names = [] if image_field is None else [image_field] if isinstance(image_field, str) else image_field
    if not isinstance(image_names, list) or not all(isinstance(name, str) and name for name in image_names):
        raise ValueError(f"'image' must be a path or a list of paths, got {image_field!r}")

    messages, num_placeholders = [], 0
    for index, turn in enumerate(conversations):
        if not isinstance(turn, dict) or turn.get("from") not in ROLES or not isinstance(turn.get("value"), str):
            raise ValueError(f"turn {index} must be {{'from': 'human'|'gpt', 'value': str}}, got {turn!r}")
        role = ROLES[turn["from"]]
        expected = "user" if index % 2 == 0 else "assistant"
        if role != expected:
            raise ValueError(f"turn {index} is from {turn['from']!r}; turns must alternate human, gpt, human, ...")
        count, text = _split_turn(turn["value"]) if role == "user" else (0, turn["value"].strip())
        if role == "assistant" and IMAGE_PLACEHOLDER in text:
            raise ValueError(f"turn {index} (gpt) contains {IMAGE_PLACEHOLDER}; images belong in human turns")
        if not text:
            raise ValueError(f"turn {index} ({turn['from']}) is empty")
        num_placeholders += count
        parts = [{"type": "image", "text": None}] * count + [{"type": "text", "text": text}]
        messages.append({"role": role, "content": parts})
    if messages[-1]["role"] != "assistant":
        raise ValueError("the conversation must end with a gpt turn (there is nothing to learn after a human turn)")
    if num_placeholders != len(image_names):
        raise ValueError(
            f"{num_placeholders} {IMAGE_PLACEHOLDER} placeholder(s) in the turns "
            f"but {len(image_names)} image(s) in 'image'"
        )

    image_paths = []
    for name in image_names:
        image_path = Path(name) if image_folder is None else image_folder / name
        problem = _image_error(image_path) if verify_images else None
        if problem is not None:
            raise ValueError(problem)
        image_paths.append(str(image_path))
    return {"id": str(record.get("id", "")), "messages": messages, "images": image_paths}


def read_llava_dataset(
    data_path: str | Path,
    image_folder: str | Path | None = None,
    strict: bool = False,
    verify_images: bool = True,
) -> tuple[datasets.Dataset, DataReport]:
    """Reads a LLaVA-format .json or .jsonl file into a `datasets.Dataset` of `id` / `messages` / `images`.

    Args:
        data_path: the conversation file.
        image_folder: folder that the records' `image` paths are relative to (None: paths are used as given).
        strict: raise `DataError` listing every bad record instead of skipping them with a report.
        verify_images: open each image once to check that it is readable (PIL `verify`, no decoding).

    Returns:
        The dataset of good records and a `DataReport` naming each bad one (id, line number, reason).
    """
    path = Path(data_path)
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    folder = None if image_folder is None else Path(image_folder)
    if folder is not None and not folder.is_dir():
        raise DataError(f"image folder not found: {folder}")

    report = DataReport(path=path)
    rows = []
    for line, record, json_error in _iter_records(path):
        record_id = str(record["id"]) if isinstance(record, dict) and "id" in record else None
        try:
            if json_error is not None:
                raise ValueError(json_error)
            rows.append(convert_record(record, folder, verify_images=verify_images))
        except ValueError as error:
            bad = RecordError(line=line, record_id=record_id, reason=str(error))
            report.errors.append(bad)
            logger.warning("%s: bad record at %s", path, bad)
    report.num_good = len(rows)
    logger.info(report.summary())
    if strict and report.errors:
        listing = "\n".join(f"  {error}" for error in report.errors)
        raise DataError(f"{path}: {report.num_bad} bad record(s) (strict mode):\n{listing}")
    if not rows:
        raise DataError(f"{path}: no usable records ({report.num_bad} bad)")
    return datasets.Dataset.from_list(rows, features=FEATURES), report


__all__ = ["DataError", "DataReport", "RecordError", "convert_record", "read_llava_dataset"]
