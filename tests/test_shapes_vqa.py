"""Shapes-VQA: answers correct by construction (recomputed from the pixels), determinism, and the export formats
that training (`training.data`) and evaluation (`mqt-llava eval --benchmark shapes_vqa`) read."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mqt_llava.evaluation.shapes_vqa import (
    BACKGROUNDS,
    COLORS,
    FAMILIES,
    PATCH_COLORS,
    PATCH_SHAPES,
    Scene,
    SceneConfig,
    answer_question,
    build_split,
    export_split,
    patch_labels,
    sample_question,
)

NUM_SCENES = 40


def _decode_cells(image: Image.Image, config: SceneConfig) -> tuple[str, dict[tuple[int, int], tuple[str, str]]]:
    """Reads the background and every object (colour, shape) per cell back from the pixels, independently of the
    scene description: colour = nearest palette entry of the cell's non-background pixels; shape from which pixels
    are filled (triangle: full bottom row; square: empty top row; circle: the rest)."""
    pixels = np.asarray(image).astype(int)
    corner = tuple(pixels[0, 0])
    background = min(BACKGROUNDS, key=lambda name: sum(abs(a - b) for a, b in zip(BACKGROUNDS[name], corner)))
    objects = {}
    size = config.cell_size
    for row in range(config.grid_size):
        for col in range(config.grid_size):
            cell = pixels[row * size : (row + 1) * size, col * size : (col + 1) * size]
            filled = np.abs(cell - np.array(BACKGROUNDS[background])).sum(axis=-1) > 30  # (size, size)
            if not filled.any():
                continue
            mean = cell[filled].mean(axis=0)
            color = min(COLORS, key=lambda name: np.abs(np.array(COLORS[name]) - mean).sum())
            if filled[-1].all():
                shape = "triangle"
            elif not filled[0].any():
                shape = "square"
            else:
                shape = "circle"
            objects[(row, col)] = (color, shape)
    return background, objects


def _answer_from_pixels(question: dict, background: str, objects: dict, config: SceneConfig) -> str:
    params = question["params"]
    by_name = {value: cell for cell, value in objects.items()}
    half = config.grid_size // 2
    if question["family"] == "background":
        return background
    if question["family"] == "color":
        (color,) = [c for c, s in objects.values() if s == params["shape"]]
        return color
    if question["family"] == "exists":
        return "yes" if (params["color"], params["shape"]) in by_name else "no"
    if question["family"] == "count":
        return str(sum(s == params["shape"] for _, s in objects.values()))
    ((row, col),) = [cell for cell, (_, s) in objects.items() if s == params["shape"]]
    if params["axis"] == "horizontal":
        return "left" if col < half else "right"
    return "top" if row < half else "bottom"


def _caption_from_pixels(background: str, objects: dict, config: SceneConfig) -> str:
    half = config.grid_size // 2
    parts = [f"{background} background ."]
    for shape in ("circle", "square", "triangle"):
        found = [
            f"{color} {'top' if row < half else 'bottom'} {'left' if col < half else 'right'}"
            for (row, col), (color, kind) in sorted(objects.items())
            if kind == shape
        ]
        parts.append(f"{shape} {len(found)} : {' , '.join(found)} ." if found else f"{shape} 0 .")
    return " ".join(parts)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes_vqa")
    return export_split(root, "test", NUM_SCENES, seed=3)


def test_answers_recomputed_from_rendered_pixels(exported):
    """Feature: answers correct by construction. Every answer and caption in the ground-truth file equals the one
    recomputed from the PNG's pixels, and the dense per-patch labels match the decoded cells."""
    config = SceneConfig()
    checked = Counter()
    for line in exported.scenes.read_text().splitlines():
        row = json.loads(line)
        background, objects = _decode_cells(Image.open(exported.root / row["image"]).convert("RGB"), config)
        scene = Scene.from_dict(row["scene"])
        assert background == scene.background
        assert objects == {(o.row, o.col): (o.color, o.shape) for o in scene.objects}
        assert row["caption"] == _caption_from_pixels(background, objects, config)
        colors, shapes = patch_labels(scene)
        per_cell = config.cell_size // config.patch_size
        for index in range(config.patches_per_side**2):
            patch_row, patch_col = divmod(index, config.patches_per_side)
            expected = objects.get((patch_row // per_cell, patch_col // per_cell), (background, "none"))
            assert (PATCH_COLORS[colors[index]], PATCH_SHAPES[shapes[index]]) == expected
        for question in row["questions"]:
            assert question["answer"] == _answer_from_pixels(question, background, objects, config), question
            checked[question["family"]] += 1
    assert set(checked) == set(FAMILIES)


def test_same_seed_same_bytes_and_other_seed_differs(tmp_path):
    """Feature: determinism. The same (split, size, seed) writes byte-identical files; another seed does not."""

    def snapshot(folder: Path) -> dict[str, bytes]:
        return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}

    first = snapshot(export_split(tmp_path / "a", "train", 12, seed=5).root)
    again = snapshot(export_split(tmp_path / "b", "train", 12, seed=5).root)
    other = snapshot(export_split(tmp_path / "c", "train", 12, seed=6).root)
    assert first == again
    assert len(first) == 12 + 5
    assert first["train_questions.jsonl"] != other["train_questions.jsonl"]


def test_question_file_is_the_eval_runner_format(exported):
    """Feature: the test split is what `mqt-llava eval --benchmark shapes_vqa` reads: exactly the keys
    question_id/image/text/category/answer, loadable by the runner's Shapes-VQA loader with every image present."""
    from mqt_llava.evaluation.benchmarks import get_benchmark

    rows = [json.loads(line) for line in exported.questions.read_text().splitlines()]
    assert all(set(row) == {"question_id", "image", "text", "category", "answer"} for row in rows)
    assert len({row["question_id"] for row in rows}) == len(rows)
    assert {row["category"] for row in rows} == set(FAMILIES)
    questions = get_benchmark("shapes_vqa").load(exported.questions, exported.root, None)
    assert len(questions) == len(rows)
    assert all(Path(question.images[0]).is_file() for question in questions)


def test_llava_exports_read_by_training_data(exported):
    """Feature: the LLaVA-format exports train like a real dataset: `training.data` reads every record without a
    bad one, with the image first in the first user turn and the caption / answers as assistant turns. The stage-2
    mix holds every VQA conversation and every caption conversation, nothing else."""
    from mqt_llava.training.data import read_llava_dataset

    for path, turns in ((exported.captions, 2), (exported.instruct, None)):
        dataset, report = read_llava_dataset(path, exported.root, strict=True)
        assert report.num_bad == 0 and len(dataset) == NUM_SCENES
        messages = dataset[0]["messages"]
        assert messages[0]["content"][0]["type"] == "image"
        if turns is not None:
            assert len(messages) == turns
    mix = json.loads(exported.mix.read_text())
    parts = json.loads(exported.instruct.read_text()) + json.loads(exported.captions.read_text())
    assert sorted(json.dumps(r["conversations"]) for r in mix) == sorted(json.dumps(r["conversations"]) for r in parts)
    assert len({r["id"] for r in mix}) == len(mix)
    _, report = read_llava_dataset(exported.mix, exported.root, strict=True)
    assert report.num_bad == 0


def test_answer_balance():
    """Feature: no family can be solved by a constant answer: yes/no are balanced and every count 0..5 occurs."""
    answers = Counter((q.family, q.answer) for record in build_split("train", 600, seed=0) for q in record.questions)
    yes, no = answers[("exists", "yes")], answers[("exists", "no")]
    assert abs(yes - no) < 0.15 * (yes + no)
    counts = [answers[("count", str(n))] for n in range(6)]
    assert min(counts) > 0.5 * max(counts)


def test_bad_input_is_named():
    """Feature: clear errors. Unknown families and impossible scene sizes name the culprit."""
    scene = build_split("train", 1, seed=0)[0].scene
    with pytest.raises(ValueError, match="'size'"):
        sample_question(scene, "size", np.random.default_rng(0))
    with pytest.raises(ValueError, match="grid_size"):
        SceneConfig(grid_size=3)
    with pytest.raises(ValueError, match="max_count"):
        SceneConfig(max_count=9)
    with pytest.raises(ValueError, match="patch_size"):
        SceneConfig(cell_size=12)
    with pytest.raises(ValueError, match="num_scenes"):
        build_split("train", 0, seed=0)
    with pytest.raises(ValueError, match="'colour'"):
        build_split("train", 1, seed=0, questions_per_family={"colour": 2})
    with pytest.raises(ValueError, match="'exists'"):
        build_split("train", 1, seed=0, questions_per_family={"exists": 0})


def test_questions_per_family_asks_different_correct_questions(tmp_path):
    """Feature: training splits can ask several questions of a family per scene. They are all different (a repeat
    would let a conversation copy its own answer), all correct, the other families keep one question, and the
    exported question ids stay unique."""
    records = build_split("train", 60, seed=1, questions_per_family={"exists": 3, "position": 2})
    asked = Counter()
    for record in records:
        per_family = Counter(q.family for q in record.questions)
        assert per_family["exists"] <= 3 and per_family["position"] <= 2
        assert all(per_family[family] <= 1 for family in ("background", "color", "count"))
        assert len({q.text for q in record.questions}) == len(record.questions)
        for question in record.questions:
            assert question.answer == answer_question(record.scene, question.family, question.params)
        asked.update(per_family)
    assert asked["exists"] == 3 * len(records) and asked["position"] > 1.5 * asked["color"] > 0
    files = export_split(tmp_path, "train", 20, seed=1, questions_per_family={"exists": 3})
    ids = [json.loads(line)["question_id"] for line in files.questions.read_text().splitlines()]
    assert len(ids) == len(set(ids)) > 20 * 3
