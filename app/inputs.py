"""Checks on what a person gives the app: an image file, a question and token budgets. Each failure raises
`InputError` with a sentence meant for the page, naming what was wrong."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from PIL import Image, UnidentifiedImageError

__all__ = ["InputError", "check_budgets", "check_image", "check_question", "read_image"]

NO_IMAGE = "No image: upload an image file or click one of the example scenes."


class InputError(ValueError):
    """Bad input from the page; its message is shown to the person as it is."""


def read_image(path: str | Path | None) -> Image.Image:
    """The RGB image in the file at `path`, fully read (so a truncated file fails here, not later)."""
    if path is None or str(path) == "":
        raise InputError(NO_IMAGE)
    name = Path(path).name
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise InputError(f"Could not read the file '{name}' as an image ({error}). Upload a PNG, JPEG or WebP file.") from error


def check_image(image: Image.Image | None) -> Image.Image:
    """The image, or `InputError` when there is none yet."""
    if image is None:
        raise InputError(NO_IMAGE)
    return image


def check_question(question: str | None) -> str:
    """The question without surrounding white space; an empty one is refused."""
    text = (question or "").strip()
    if not text:
        raise InputError("The question is empty: type a question about the image.")
    return text


def check_budgets(budgets: Iterable[object], num_queries: int) -> list[int]:
    """The token budgets as sorted distinct integers, each in 1..`num_queries` (the loaded model's M)."""
    checked = set()
    for value in budgets:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
            raise InputError(f"The number of visual tokens must be a whole number from 1 to {num_queries}, got {value!r}.")
        if not 1 <= value <= num_queries:
            raise InputError(f"The number of visual tokens must be from 1 to {num_queries} for this model (M = {num_queries}), got {int(value)}.")
        checked.add(int(value))
    if not checked:
        raise InputError("No token budget chosen: pick at least one m to compare.")
    return sorted(checked)
