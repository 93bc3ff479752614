"""Shapes-VQA questions and dense captions, with answers computed from the scene description.

Families (each needs a different amount of visual detail):
    background  the background colour (global: survives very few visual tokens)
    color       the colour of the one object of a named shape kind
    exists      whether a named (colour, shape) object is present; yes/no balanced (POPE-style)
    count       how many objects of a shape kind (0..max_count)
    position    which half of the image the one object of a named shape kind is in (left/right or top/bottom)
Every answer is one word. A scene asks one question of each family it supports (`can_ask`): the `color` and
`position` families need a shape kind that occurs exactly once (most scenes have one). Both name the object by that
shape alone, while `exists` names a colour AND a shape.
The spatial families (`spatial_questions.SPATIAL_FAMILIES`) are answered by the same functions; splits ask the
standard five unless told otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .scenes import COLORS, SHAPES, Scene, SceneObject
from .spatial_questions import SPATIAL_FAMILIES, spatial_answer, spatial_can_ask, spatial_params, spatial_text

FAMILIES: tuple[str, ...] = ("background", "color", "exists", "count", "position")
ALL_FAMILIES: tuple[str, ...] = FAMILIES + SPATIAL_FAMILIES
CAPTION_PROMPT = "Describe the image."


@dataclass(frozen=True)
class Question:
    """A question about one scene: its family, text, one-word answer and the parameters the answer depends on."""

    family: str
    text: str
    answer: str
    params: dict = field(default_factory=dict)


def _only_object(scene: Scene, family: str, shape: str) -> SceneObject:
    matches = [obj for obj in scene.objects if obj.shape == shape]
    if len(matches) != 1:
        raise ValueError(f"{family} question needs exactly one {shape}, scene has {len(matches)}")
    return matches[0]


def answer_question(scene: Scene, family: str, params: dict) -> str:
    """The correct one-word answer of a question of `family` with `params` about `scene`."""
    if family in SPATIAL_FAMILIES:
        return spatial_answer(scene, family, params)
    if family == "background":
        return scene.background
    if family == "color":
        return _only_object(scene, family, params["shape"]).color
    if family == "exists":
        return "yes" if scene.find(params["color"], params["shape"]) else "no"
    if family == "count":
        return str(scene.count(params["shape"]))
    if family == "position":
        obj = _only_object(scene, family, params["shape"])
        half = scene.config.grid_size // 2
        if params["axis"] == "horizontal":
            return "left" if obj.col < half else "right"
        return "top" if obj.row < half else "bottom"
    raise ValueError(f"unknown question family {family!r}; expected one of {ALL_FAMILIES}")


def question_text(family: str, params: dict) -> str:
    """The text of a question of `family` with `params` (keys among color, shape, axis; spatial families also
    quadrant and side)."""
    if family in SPATIAL_FAMILIES:
        return spatial_text(family, params)
    if family == "background":
        return "What color is the background?"
    if family == "color":
        return f"What color is the {params['shape']}?"
    if family == "exists":
        article = "an" if params["color"][0] in "aeiou" else "a"
        return f"Is there {article} {params['color']} {params['shape']}?"
    if family == "count":
        return f"How many {params['shape']}s are there?"
    if params["axis"] == "horizontal":
        return f"Is the {params['shape']} on the left or the right?"
    return f"Is the {params['shape']} at the top or the bottom?"


def _sample_params(scene: Scene, family: str, rng: np.random.Generator) -> dict:
    if family in SPATIAL_FAMILIES:
        return spatial_params(scene, family, rng)
    if family == "background":
        return {}
    if family in ("color", "position"):
        single = [shape for shape in SHAPES if scene.count(shape) == 1]
        params = {"shape": str(rng.choice(single))}
        if family == "position":
            params["axis"] = str(rng.choice(["horizontal", "vertical"]))
        return params
    if family == "count":
        crowded = [shape for shape in SHAPES if scene.count(shape) > scene.config.max_other]
        return {"shape": crowded[0] if crowded else str(rng.choice(SHAPES))}
    present = [(obj.color, obj.shape) for obj in scene.objects]
    absent = [(c, s) for c in COLORS for s in SHAPES if (c, s) not in present]
    pool = present if (rng.random() < 0.5 and present) else absent
    color, shape = pool[int(rng.integers(len(pool)))]
    return {"color": color, "shape": shape}


def can_ask(scene: Scene, family: str) -> bool:
    """Whether `scene` supports a question of `family`: `color` and `position` need a shape kind that occurs
    exactly once (the spatial families: see `spatial_questions`)."""
    if family in SPATIAL_FAMILIES:
        return spatial_can_ask(scene, family)
    if family in ("color", "position"):
        return any(scene.count(shape) == 1 for shape in SHAPES)
    return family in FAMILIES


def sample_question(scene: Scene, family: str, rng: np.random.Generator) -> Question:
    """Draws one question of `family` about `scene`; raises `ValueError` if the scene cannot support it (`can_ask`)."""
    if family not in ALL_FAMILIES:
        raise ValueError(f"unknown question family {family!r}; expected one of {ALL_FAMILIES}")
    if not can_ask(scene, family):
        raise ValueError(f"this scene cannot support a {family!r} question: {scene}")
    params = _sample_params(scene, family, rng)
    return Question(family, question_text(family, params), answer_question(scene, family, params), params)


def _quadrant(scene: Scene, row: int, col: int) -> str:
    half = scene.config.grid_size // 2
    return f"{'top' if row < half else 'bottom'} {'left' if col < half else 'right'}"


def dense_caption(scene: Scene) -> str:
    """A caption naming the background, then for each shape kind its count and every object of it (colour,
    quadrant) in reading order (row by row, left to right).

    Grouping by shape kind makes the caption ask what the questions ask: after "circle" the model has to find the
    circles, count them, and say where each one is. Example:
    "gray background . circle 2 : red top left , blue bottom right . square 0 . triangle 1 : green top right ."
    """
    parts = [f"{scene.background} background ."]
    for shape in SHAPES:
        objects = sorted((obj for obj in scene.objects if obj.shape == shape), key=lambda obj: (obj.row, obj.col))
        described = " , ".join(f"{obj.color} {_quadrant(scene, obj.row, obj.col)}" for obj in objects)
        parts.append(f"{shape} {len(objects)} : {described} ." if objects else f"{shape} 0 .")
    return " ".join(parts)


__all__ = ["ALL_FAMILIES", "CAPTION_PROMPT", "FAMILIES", "Question", "answer_question", "can_ask", "dense_caption", "question_text", "sample_question"]
