"""Builds Shapes-VQA splits and writes them like a real dataset: an image folder plus LLaVA-format JSON.

Files written under `out_dir/` for a split named S:
    images/S-00000.png ...   the rendered scenes
    S_scenes.jsonl           one line per scene: id, image, scene description, caption, questions (the ground truth)
    S_captions.json          LLaVA format, one caption conversation per image (stage 1)
    S_instruct.json          LLaVA format, one multi-turn conversation per image with all its questions
    S_mix.json               LLaVA format, the instruct conversations plus the caption conversations (stage 2)
    S_questions.jsonl        evaluation format: {"question_id", "image", "text", "category", "answer"} per question
Image paths inside the files are relative to `out_dir`. The same (split, num_scenes, seed, config) gives the same bytes.
"""

from __future__ import annotations

import json
import zlib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .questions import (
    ALL_FAMILIES,
    CAPTION_PROMPT,
    FAMILIES,
    Question,
    can_ask,
    dense_caption,
    sample_question,
)
from .scenes import DEFAULT_SCENE_CONFIG, Scene, SceneConfig, render_scene, sample_scene

IMAGE_TOKEN = "<image>"
# Scenes in the test split that `mqt-llava demo` and `mqt-llava eval --benchmark shapes_vqa` generate by default.
DEFAULT_TEST_SCENES = 200


@dataclass(frozen=True)
class SceneRecord:
    """One scene with everything derived from it."""

    scene_id: str
    scene: Scene
    caption: str
    questions: tuple[Question, ...]

    @property
    def image_file(self) -> str:
        return f"images/{self.scene_id}.png"

    def image(self) -> Image.Image:
        return render_scene(self.scene)


@dataclass(frozen=True)
class SplitFiles:
    """Paths written by `export_split`."""

    root: Path
    scenes: Path
    captions: Path
    instruct: Path
    mix: Path
    questions: Path


def _split_rng(split: str, seed: int) -> np.random.Generator:
    # A stable per-split stream: the same seed gives unrelated train and test scenes.
    return np.random.default_rng([seed, zlib.crc32(split.encode())])


def _check_families(families: Sequence[str], questions_per_family: Mapping[str, int]) -> None:
    unknown = [family for family in families if family not in ALL_FAMILIES]
    if unknown or not families:
        raise ValueError(f"families must be a non-empty selection of {ALL_FAMILIES}, got {list(families)}")
    for family, count in questions_per_family.items():
        if family not in families:
            raise ValueError(f"questions_per_family names family {family!r}, which this split does not ask ({list(families)})")
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"questions_per_family[{family!r}] must be a positive integer, got {count!r}")


def _distinct_questions(scene: Scene, family: str, count: int, rng: np.random.Generator) -> list[Question]:
    # Up to `count` questions with different texts: a repeated question would let a conversation copy its answer.
    questions: list[Question] = []
    for _ in range(4 * count):
        question = sample_question(scene, family, rng)
        if all(question.text != other.text for other in questions):
            questions.append(question)
        if len(questions) == count:
            break
    return questions


def build_split(
    split: str,
    num_scenes: int,
    seed: int,
    config: SceneConfig = DEFAULT_SCENE_CONFIG,
    questions_per_family: Mapping[str, int] | None = None,
    families: Sequence[str] = FAMILIES,
) -> list[SceneRecord]:
    """Draws `num_scenes` scenes with questions of every family in `families` each scene supports, in a fixed order
    for a seed.

    `questions_per_family` asks up to that many different questions of a family per scene (default 1 of each; the
    evaluation splits keep the default so that every family weighs the same). With the defaults, a split is the same
    as one drawn before these options existed. `families` may name spatial families (`spatial_questions`).
    """
    if num_scenes < 1:
        raise ValueError(f"num_scenes must be positive, got {num_scenes}")
    _check_families(families, questions_per_family or {})
    counts = dict.fromkeys(families, 1)
    counts.update(questions_per_family or {})
    rng = _split_rng(split, seed)
    records = []
    for index in range(num_scenes):
        scene = sample_scene(rng, config)
        questions = tuple(
            question
            for family in families
            if can_ask(scene, family)
            for question in _distinct_questions(scene, family, counts[family], rng)
        )
        records.append(SceneRecord(f"{split}-{index:05d}", scene, dense_caption(scene), questions))
    return records


def _conversation(turns: list[tuple[str, str]]) -> list[dict]:
    messages = []
    for index, (question, answer) in enumerate(turns):
        prompt = f"{IMAGE_TOKEN}\n{question}" if index == 0 else question
        messages += [{"from": "human", "value": prompt}, {"from": "gpt", "value": answer}]
    return messages


def _write_json(path: Path, data: list) -> None:
    path.write_text(json.dumps(data, indent=1) + "\n")


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def export_split(
    out_dir: str | Path,
    split: str,
    num_scenes: int,
    seed: int,
    config: SceneConfig = DEFAULT_SCENE_CONFIG,
    questions_per_family: Mapping[str, int] | None = None,
    families: Sequence[str] = FAMILIES,
) -> SplitFiles:
    """Writes a split (images + JSON files listed in the module docstring) and returns their paths.

    `questions_per_family` and `families` are passed to `build_split`."""
    root = Path(out_dir)
    (root / "images").mkdir(parents=True, exist_ok=True)
    records = build_split(split, num_scenes, seed, config, questions_per_family, families)
    shuffle = _split_rng(f"{split}/turn-order", seed)
    scenes, captions, instruct, questions = [], [], [], []
    for record in records:
        record.image().save(root / record.image_file, format="PNG")
        scenes.append(
            {
                "id": record.scene_id,
                "image": record.image_file,
                "scene": record.scene.to_dict(),
                "caption": record.caption,
                "questions": [asdict(q) for q in record.questions],
            }
        )
        captions.append(
            {"id": record.scene_id, "image": record.image_file, "conversations": _conversation([(CAPTION_PROMPT, record.caption)])}
        )
        order = shuffle.permutation(len(record.questions))
        turns = [(record.questions[i].text, record.questions[i].answer) for i in order]
        instruct.append({"id": record.scene_id, "image": record.image_file, "conversations": _conversation(turns)})
        asked = Counter()
        for q in record.questions:
            asked[q.family] += 1
            suffix = "" if asked[q.family] == 1 else f"-{asked[q.family]}"
            questions.append(
                {
                    "question_id": f"{record.scene_id}-{q.family}{suffix}",
                    "image": record.image_file,
                    "text": q.text,
                    "category": q.family,
                    "answer": q.answer,
                }
            )
    files = SplitFiles(
        root,
        root / f"{split}_scenes.jsonl",
        root / f"{split}_captions.json",
        root / f"{split}_instruct.json",
        root / f"{split}_mix.json",
        root / f"{split}_questions.jsonl",
    )
    _write_jsonl(files.scenes, scenes)
    _write_json(files.captions, captions)
    _write_json(files.instruct, instruct)
    _write_json(files.mix, instruct + [{**caption, "id": f"{caption['id']}-caption"} for caption in captions])
    _write_jsonl(files.questions, questions)
    return files


__all__ = ["IMAGE_TOKEN", "SceneRecord", "SplitFiles", "build_split", "export_split"]
