"""Shapes-VQA spatial question families: objects picked out by where they are, or by colour where a shape repeats.

They use only words of the five standard families (`questions.FAMILIES`), on the same scenes, but ask what those
never ask: to find an object by its place, to count inside one half, or to tell apart objects of the same shape.
    color_at     the colour of the one object of a shape kind in a named quadrant, in a scene with several of that
                 kind ("What color is the circle at the top left?")
    exists_at    whether a named (colour, shape) object of the scene is in a named half; the object always exists,
                 so only its place decides ("Is there a red circle on the left?")
    count_at     how many objects of a shape kind are in a named half ("How many circles are at the top?")
    position_of  which half a named (colour, shape) object is in, when its shape occurs several times ("Is the red
                 circle on the left or the right?")
A model that ignores where things are answers these at about chance or at the rate of its nearest standard question.
"""

from __future__ import annotations

import numpy as np

from .scenes import SHAPES, Scene, SceneObject

SPATIAL_FAMILIES: tuple[str, ...] = ("color_at", "exists_at", "count_at", "position_of")
AXES = ("horizontal", "vertical")
SIDES = {"horizontal": ("left", "right"), "vertical": ("top", "bottom")}


def _side(scene: Scene, obj: SceneObject, axis: str) -> str:
    half = scene.config.grid_size // 2
    if axis == "horizontal":
        return "left" if obj.col < half else "right"
    return "top" if obj.row < half else "bottom"


def _quadrant(scene: Scene, obj: SceneObject) -> str:
    return f"{_side(scene, obj, 'vertical')} {_side(scene, obj, 'horizontal')}"


def _located(scene: Scene, shape: str, quadrant: str) -> list[SceneObject]:
    return [obj for obj in scene.objects if obj.shape == shape and _quadrant(scene, obj) == quadrant]


def _color_at_choices(scene: Scene) -> list[tuple[str, str]]:
    # (shape, quadrant) pairs naming exactly one object of a shape kind that occurs more than once.
    pairs = {(obj.shape, _quadrant(scene, obj)) for obj in scene.objects if scene.count(obj.shape) > 1}
    return sorted(pair for pair in pairs if len(_located(scene, *pair)) == 1)


def _repeated(scene: Scene) -> list[SceneObject]:
    return [obj for obj in scene.objects if scene.count(obj.shape) > 1]


def spatial_can_ask(scene: Scene, family: str) -> bool:
    """Whether `scene` supports a question of the spatial `family`."""
    if family == "color_at":
        return bool(_color_at_choices(scene))
    if family == "exists_at":
        return bool(scene.objects)
    if family == "position_of":
        return bool(_repeated(scene))
    return family == "count_at"


def spatial_params(scene: Scene, family: str, rng: np.random.Generator) -> dict:
    """Draws the parameters of a spatial question the scene supports (`spatial_can_ask`)."""
    if family == "color_at":
        choices = _color_at_choices(scene)
        shape, quadrant = choices[int(rng.integers(len(choices)))]
        return {"shape": shape, "quadrant": quadrant}
    axis = str(rng.choice(AXES))
    if family == "count_at":
        crowded = [shape for shape in SHAPES if scene.count(shape) > scene.config.max_other]
        shape = crowded[0] if crowded else str(rng.choice(SHAPES))
        return {"shape": shape, "axis": axis, "side": str(rng.choice(SIDES[axis]))}
    pool = list(scene.objects) if family == "exists_at" else _repeated(scene)
    obj = pool[int(rng.integers(len(pool)))]
    params = {"color": obj.color, "shape": obj.shape, "axis": axis}
    if family == "exists_at":
        params["side"] = str(rng.choice(SIDES[axis]))
    return params


def spatial_answer(scene: Scene, family: str, params: dict) -> str:
    """The one-word answer of a spatial question about `scene`."""
    if family == "color_at":
        located = _located(scene, params["shape"], params["quadrant"])
        if len(located) != 1:
            raise ValueError(f"color_at needs exactly one {params['shape']} at the {params['quadrant']}, scene has {len(located)}")
        return located[0].color
    if family == "count_at":
        return str(sum(obj.shape == params["shape"] and _side(scene, obj, params["axis"]) == params["side"] for obj in scene.objects))
    obj = scene.find(params["color"], params["shape"])
    if obj is None:
        raise ValueError(f"{family} names a {params['color']} {params['shape']}, which the scene does not have")
    if family == "exists_at":
        return "yes" if _side(scene, obj, params["axis"]) == params["side"] else "no"
    return _side(scene, obj, params["axis"])


def _where(axis: str, side: str) -> str:
    return f"on the {side}" if axis == "horizontal" else f"at the {side}"


def spatial_text(family: str, params: dict) -> str:
    """The text of a spatial question (params among shape, color, quadrant, axis, side)."""
    if family == "color_at":
        return f"What color is the {params['shape']} at the {params['quadrant']}?"
    if family == "count_at":
        return f"How many {params['shape']}s are {_where(params['axis'], params['side'])}?"
    if family == "exists_at":
        article = "an" if params["color"][0] in "aeiou" else "a"
        return f"Is there {article} {params['color']} {params['shape']} {_where(params['axis'], params['side'])}?"
    where = "on the left or the right" if params["axis"] == "horizontal" else "at the top or the bottom"
    return f"Is the {params['color']} {params['shape']} {where}?"


__all__ = ["SPATIAL_FAMILIES", "spatial_answer", "spatial_can_ask", "spatial_params", "spatial_text"]
