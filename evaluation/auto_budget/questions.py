"""Question sets for calibrating and measuring the automatic budget: Shapes-VQA splits or a LLaVA-format JSON file."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from mqt_llava.evaluation.scorers.exact import normalize_short_answer
from mqt_llava.evaluation.shapes_vqa import build_split

IMAGE_PLACEHOLDER = "<image>"


@dataclass(frozen=True)
class QuestionItem:
    """One question about one image, with its gold short answer and the family it is reported under."""

    image: Image.Image
    question: str
    answer: str
    family: str

    def is_correct(self, prediction: str) -> bool:
        """Exact match after lower-casing and stripping white space and trailing periods."""
        return normalize_short_answer(prediction) == normalize_short_answer(self.answer)


def shapes_vqa_items(split: str, num_scenes: int, seed: int) -> list[QuestionItem]:
    """Every question of a Shapes-VQA split (`build_split`), family = the question family."""
    return [
        QuestionItem(record.image(), question.text, question.answer, question.family)
        for record in build_split(split, num_scenes, seed)
        for question in record.questions
    ]


def llava_json_items(path: str | Path, image_folder: str | Path) -> list[QuestionItem]:
    """Question-answer pairs of a LLaVA-format file: each record's `image` (under `image_folder`) and every
    human turn followed by a gpt turn. The family is the record's `category` (or `question_type`), else "all".

    Raises `ValueError` naming the record for a missing image or a conversation that does not alternate.
    """
    records = json.loads(Path(path).read_text())
    if not isinstance(records, list):
        raise ValueError(f"{path}: expected a JSON list of records, got {type(records).__name__}")
    items = []
    for index, record in enumerate(records):
        name = record.get("id", index)
        if "image" not in record:
            raise ValueError(f"{path}: record {name!r} has no 'image'")
        image_path = Path(image_folder) / record["image"]
        try:
            image = Image.open(image_path).convert("RGB")
        except OSError as error:
            raise ValueError(f"{path}: record {name!r}: cannot read image {image_path}: {error}") from None
        turns = record.get("conversations", [])
        if len(turns) < 2 or len(turns) % 2:
            raise ValueError(f"{path}: record {name!r} needs human/gpt turn pairs, got {len(turns)} turns")
        family = str(record.get("category", record.get("question_type", "all")))
        for human, gpt in zip(turns[::2], turns[1::2]):
            if human.get("from") != "human" or gpt.get("from") != "gpt":
                raise ValueError(f"{path}: record {name!r}: turns must alternate human, gpt")
            question = human["value"].replace(IMAGE_PLACEHOLDER, "").strip()
            items.append(QuestionItem(image, question, gpt["value"].strip(), family))
    if not items:
        raise ValueError(f"{path} holds no questions")
    return items


__all__ = ["QuestionItem", "llava_json_items", "shapes_vqa_items"]
