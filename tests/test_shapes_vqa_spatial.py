"""Shapes-VQA spatial families (the `--lora` demo's new domain): answers recomputed from the pixels, questions that
only a model that reads places can answer, and the vocabulary of the standard families."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from PIL import Image

from test_shapes_vqa import _decode_cells
from mqt_llava.demo.model_setup import vocabulary_texts
from mqt_llava.evaluation.shapes_vqa import SPATIAL_FAMILIES, SceneConfig, build_split, export_split


def _side(row: int, col: int, axis: str, half: int) -> str:
    if axis == "horizontal":
        return "left" if col < half else "right"
    return "top" if row < half else "bottom"


def _spatial_answer_from_pixels(question: dict, objects: dict, half: int) -> str:
    """The answer worked out from the decoded cells {(row, col): (color, shape)}, independently of the generator."""
    params, family = question["params"], question["family"]
    if family == "color_at":
        vertical, horizontal = params["quadrant"].split()
        (color,) = [c for (r, k), (c, s) in objects.items()
                    if s == params["shape"] and _side(r, k, "vertical", half) == vertical and _side(r, k, "horizontal", half) == horizontal]  # fmt: skip
        return color
    if family == "count_at":
        return str(sum(s == params["shape"] and _side(r, k, params["axis"], half) == params["side"] for (r, k), (_, s) in objects.items()))
    ((row, col),) = [cell for cell, value in objects.items() if value == (params["color"], params["shape"])]
    side = _side(row, col, params["axis"], half)
    return ("yes" if side == params["side"] else "no") if family == "exists_at" else side


@pytest.fixture(scope="module")
def spatial(tmp_path_factory):
    root = tmp_path_factory.mktemp("spatial")
    return export_split(root, "spatial-test", 60, seed=4, families=SPATIAL_FAMILIES,
                        questions_per_family={"exists_at": 3, "count_at": 2})  # fmt: skip


def test_spatial_answers_recomputed_from_rendered_pixels(spatial):
    """Feature: the new domain's answers are correct by construction. Every spatial answer equals the one worked
    out from the PNG's pixels; `color_at` and `position_of` only name shapes that occur more than once (so the
    place, or the colour, is what picks the object), and every family is asked."""
    config = SceneConfig()
    asked = Counter()
    for line in spatial.scenes.read_text().splitlines():
        row = json.loads(line)
        _, objects = _decode_cells(Image.open(spatial.root / row["image"]).convert("RGB"), config)
        shapes = Counter(shape for _, shape in objects.values())
        for question in row["questions"]:
            assert question["answer"] == _spatial_answer_from_pixels(question, objects, config.grid_size // 2), question
            if question["family"] in ("color_at", "position_of"):
                assert shapes[question["params"]["shape"]] > 1, question
            asked[question["family"]] += 1
    assert set(asked) == set(SPATIAL_FAMILIES)


def test_exists_at_is_decided_by_place_alone():
    """Feature: a model that only knows what is in the image cannot pass `exists_at`: the named object is always in
    the scene, and the answers split between yes and no."""
    answers = Counter()
    for record in build_split("spatial-check", 200, seed=2, families=("exists_at",)):
        for question in record.questions:
            assert record.scene.find(question.params["color"], question.params["shape"]) is not None
            answers[question.answer] += 1
    assert set(answers) == {"yes", "no"} and min(answers.values()) > 0.35 * sum(answers.values())


def test_spatial_questions_use_only_the_demo_vocabulary():
    """Feature: the new domain needs no new token. Every word of every spatial question and answer is a word of the
    texts the demo's word-level tokenizer is trained on."""
    vocabulary = {word for text in vocabulary_texts() for word in text.replace("?", " ? ").split()}
    for record in build_split("spatial-check", 100, seed=3, families=SPATIAL_FAMILIES):
        for question in record.questions:
            words = set(question.text.replace("?", " ? ").split()) | {question.answer}
            assert words <= vocabulary, words - vocabulary


def test_unknown_or_unasked_families_are_named():
    """Feature: clear errors. A split asked for an unknown family, or given per-family counts of a family it does
    not ask, names it."""
    with pytest.raises(ValueError, match="'size_at'"):
        build_split("x", 1, seed=0, families=("size_at",))
    with pytest.raises(ValueError, match="'color'"):
        build_split("x", 1, seed=0, families=SPATIAL_FAMILIES, questions_per_family={"color": 2})
