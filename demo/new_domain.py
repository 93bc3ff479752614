"""The new domain of `mqt-llava demo --lora`: spatial questions about Shapes-VQA scenes.

The shipped demo model answers five question families that name an object by its shape (or colour and shape) and ask
for its colour, presence, count or half of the image. The new domain turns that around and asks for objects by where
they are (`evaluation/shapes_vqa/spatial_questions.py`): "What color is the circle at the top left?", "Is there a
red circle on the left?", "How many circles are at the top?", and "Is the red circle on the left or the right?" where
several circles share the scene. The scenes look the same and every word is one the model's word-level tokenizer
already has (no token is added); what is new is the task, as when a vision-language model is fine-tuned to ground its
answers in places. A model that ignores where things are answers at about chance, or at the rate of the standard
question it resembles.

Training data: the new domain's training split plus a share of old-domain conversations (replay), so that learning
the new questions does not wear away the old ones; held-out test splits of both domains measure before and after.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mqt_llava.evaluation.shapes_vqa import (
    COLORS,
    DEFAULT_SCENE_CONFIG,
    FAMILIES,
    SPATIAL_FAMILIES,
    SceneRecord,
    build_split,
    export_split,
)

from .sweep import accuracy_by_family
from .targets import FLOORS_AT_M
from .train_pipeline import QUESTIONS_PER_FAMILY

NEW_DOMAIN_NAME = "Shapes-VQA spatial questions"
NEW_DOMAIN_DESCRIPTION = (
    "questions that pick out objects of Shapes-VQA scenes by where they are: the colour of the shape in a named "
    "quadrant, whether a named object is in a named half, how many of a shape are in a half, and which half a named "
    "object is in when its shape repeats"
)
NEW_FAMILIES = SPATIAL_FAMILIES
# Each new family is held to the floor at m = M of the standard family it extends.
EXTENDS = {"color_at": "color", "exists_at": "exists", "count_at": "count", "position_of": "position"}
NEW_FLOORS_AT_M = {family: FLOORS_AT_M[EXTENDS[family]] for family in NEW_FAMILIES}
# Training conversations ask several different questions of a family where the scene allows it (as the demo's do).
NEW_QUESTIONS_PER_FAMILY = {"color_at": 3, "exists_at": 6, "count_at": 4, "position_of": 4}
# Split names: different names draw unrelated scenes from one seed.
NEW_TRAIN_SPLIT = "spatial-train"
NEW_TEST_SPLIT = "spatial-test"
REPLAY_SPLIT = "replay"
OLD_TEST_SPLIT = "test"


@dataclass(frozen=True)
class DomainData:
    """The exported training file (new-domain conversations and replayed old-domain ones, shuffled) and its counts."""

    data_path: Path
    image_folder: Path
    num_new: int
    num_replay: int


def export_training_data(out_dir: Path, num_scenes: int, replay_fraction: float, seed: int) -> DomainData:
    """Writes `num_scenes` new-domain training scenes and round(replay_fraction * num_scenes) old-domain ones (split
    `replay`, never a test split) as LLaVA-format VQA conversations, merged and shuffled into `train.json`."""
    if num_scenes < 1:
        raise ValueError(f"the new domain needs at least one training scene, got {num_scenes}")
    if not 0.0 <= replay_fraction < 1.0:
        raise ValueError(f"replay_fraction must be in [0, 1), got {replay_fraction}")
    new = export_split(out_dir, NEW_TRAIN_SPLIT, num_scenes, seed, DEFAULT_SCENE_CONFIG, NEW_QUESTIONS_PER_FAMILY,
                       NEW_FAMILIES)  # fmt: skip
    rows = json.loads(new.instruct.read_text())
    num_replay = round(replay_fraction * num_scenes)
    if num_replay:
        replay = export_split(out_dir, REPLAY_SPLIT, num_replay, seed, DEFAULT_SCENE_CONFIG, QUESTIONS_PER_FAMILY)
        rows += json.loads(replay.instruct.read_text())
    random.Random(seed).shuffle(rows)
    data_path = out_dir / "train.json"
    data_path.write_text(json.dumps(rows) + "\n")
    return DomainData(data_path, out_dir, num_scenes, num_replay)


def chance_levels() -> dict[str, float]:
    """Accuracy of uniform guessing among each new family's possible answers, and their average."""
    colors, counts = len(COLORS), DEFAULT_SCENE_CONFIG.max_count + 1
    chance = {"color_at": 1 / colors, "exists_at": 1 / 2, "count_at": 1 / counts, "position_of": 1 / 2}
    chance["average"] = sum(chance.values()) / len(chance)
    return chance


def accuracy_by_axis(records: Sequence[SceneRecord], answers: Sequence[tuple[str, str, str]]) -> dict[str, dict[str, float]]:
    """Accuracy of each new family that names one half of the image (`exists_at`, `count_at`, `position_of`), split
    by that half's axis: {family: {"horizontal": fraction, "vertical": fraction}} (an axis without questions is left
    out). `answers` are `sweep.answer_questions`' (family, gold, predicted) rows for `records`, in record order.

    It tells a model that cannot tell left from right apart from one that cannot locate objects at all."""
    questions = [question for record in records for question in record.questions]
    if len(questions) != len(answers):
        raise ValueError(f"{len(answers)} answers for {len(questions)} questions: answer every question of the records")
    rows_by_axis: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
    for question, row in zip(questions, answers, strict=True):
        if question.family != row[0]:
            raise ValueError(f"answers out of order: a {row[0]} answer for a {question.family} question")
        if "axis" in question.params:
            rows_by_axis[question.params["axis"]].append(row)
    by_axis = {axis: accuracy_by_family(rows) for axis, rows in sorted(rows_by_axis.items())}
    return {
        family: {axis: accuracy[family] for axis, accuracy in by_axis.items() if family in accuracy}
        for family in NEW_FAMILIES
        if any(family in accuracy for accuracy in by_axis.values())
    }


def held_out_splits(num_scenes: int, seed: int, old_num_scenes: int, old_seed: int) -> dict[str, list[SceneRecord]]:
    """The held-out splits: {"new": the new domain's, "old": the demo's own test split (the one its card names)}."""
    return {
        "new": build_split(NEW_TEST_SPLIT, num_scenes, seed, families=NEW_FAMILIES),
        "old": build_split(OLD_TEST_SPLIT, old_num_scenes, old_seed, families=FAMILIES),
    }


__all__ = [
    "EXTENDS",
    "NEW_DOMAIN_DESCRIPTION",
    "NEW_DOMAIN_NAME",
    "NEW_FAMILIES",
    "NEW_FLOORS_AT_M",
    "DomainData",
    "accuracy_by_axis",
    "chance_levels",
    "export_training_data",
    "held_out_splits",
]
