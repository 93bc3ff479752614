"""A toy LLaVA-format dataset with synthetic images, for smoke runs, the step-time benchmark and tests (no downloads).

Each record asks about one generated image (`mqt_llava.tools.testing.make_image`) in words of the tiny test
tokenizer's vocabulary; every third record has a second exchange, and `text_only_every` adds text-only records.
"""

from __future__ import annotations

import json
from pathlib import Path

from mqt_llava.tools.testing import make_image

QUESTIONS = ("what is in the image ?", "describe the picture .", "how many shapes are there ?")
ANSWERS = ("a red square", "a blue circle on the left", "two shapes", "a green triangle at the top", "one")


def toy_record(index: int, image_name: str | None) -> dict:
    """One LLaVA record; `image_name=None` gives a text-only record."""
    question = QUESTIONS[index % len(QUESTIONS)]
    conversations = [
        {"from": "human", "value": question if image_name is None else f"<image>\n{question}"},
        {"from": "gpt", "value": ANSWERS[index % len(ANSWERS)]},
    ]
    if index % 3 == 2:
        conversations += [
            {"from": "human", "value": "what is in the image ?"},
            {"from": "gpt", "value": ANSWERS[(index + 1) % len(ANSWERS)]},
        ]
    record = {"id": f"toy-{index}", "conversations": conversations}
    if image_name is not None:
        record["image"] = image_name
    return record


def write_toy_dataset(
    folder: str | Path, num_records: int = 8, image_size: int = 32, text_only_every: int = 0, seed: int = 0
) -> tuple[Path, Path]:
    """Writes `folder/data.json` and `folder/images/*.png`; returns (data path, image folder)."""
    folder = Path(folder)
    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    records = []
    for index in range(num_records):
        if text_only_every and index % text_only_every == text_only_every - 1:
            records.append(toy_record(index, None))
            continue
        name = f"{index}.png"
        make_image(seed + index, image_size).save(images / name)
        records.append(toy_record(index, name))
    data_path = folder / "data.json"
    data_path.write_text("[\n" + ",\n".join(json.dumps(record) for record in records) + "\n]\n")
    return data_path, images


__all__ = ["toy_record", "write_toy_dataset"]
