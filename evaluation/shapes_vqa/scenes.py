"""Shapes-VQA scenes: a few coloured shapes on a plain background, aligned with the vision tower's patches.

A scene is a square grid of `grid_size` x `grid_size` cells of `cell_size` pixels; each object fills one cell, and
a cell is an exact block of `patch_size`-pixel patches (2 x 2 by default). So every patch of the vision tower holds
either plain background or one quarter of one shape, never parts of two: the per-patch labels (`patch_labels`) are
exact, and shape kind is visible inside each patch. Everything is computed from the `Scene` description, which is
plain data (JSON round trip via `to_dict`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from PIL import Image, ImageDraw

BACKGROUNDS: dict[str, tuple[int, int, int]] = {"white": (245, 245, 245), "gray": (128, 128, 128), "black": (15, 15, 15)}
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 180, 40),
    "blue": (30, 60, 230),
    "yellow": (240, 220, 20),
    "purple": (150, 40, 190),
    "orange": (250, 140, 0),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
# Per-patch class vocabularies of the dense labels: every background and object colour, and "none" + each shape.
PATCH_COLORS: tuple[str, ...] = tuple(BACKGROUNDS) + tuple(COLORS)
PATCH_SHAPES: tuple[str, ...] = ("none",) + SHAPES


@dataclass(frozen=True)
class SceneConfig:
    """Sizes of a Shapes-VQA scene.

    Attributes:
        grid_size: cells per side (objects sit on grid_size**2 cells).
        cell_size: pixels per cell side, a multiple of `patch_size`.
        patch_size: the vision tower's patch size (the unit of the dense labels).
        max_count: most objects of one shape kind (count answers are 0..max_count).
        max_other: most objects of each of the other shape kinds (see `sample_scene`).
    """

    grid_size: int = 4
    cell_size: int = 16
    patch_size: int = 8
    max_count: int = 5
    max_other: int = 2

    def __post_init__(self) -> None:
        if self.grid_size < 2 or self.grid_size % 2:
            raise ValueError(f"grid_size must be an even number >= 2 (scenes have halves), got {self.grid_size}")
        if self.cell_size < 4 or self.cell_size % self.patch_size:
            raise ValueError(f"cell_size must be a multiple of patch_size ({self.patch_size}) and >= 4, got {self.cell_size}")
        if not 1 <= self.max_count <= len(COLORS):
            raise ValueError(f"max_count must be in 1..{len(COLORS)} (objects of one shape differ in colour), got {self.max_count}")
        if not 0 <= self.max_other <= self.max_count:
            raise ValueError(f"max_other must be in 0..max_count ({self.max_count}), got {self.max_other}")
        if self.max_count + (len(SHAPES) - 1) * self.max_other > self.grid_size**2:
            raise ValueError(f"grid_size {self.grid_size} has too few cells for max_count {self.max_count} + others")

    @property
    def image_size(self) -> int:
        return self.grid_size * self.cell_size

    @property
    def patches_per_side(self) -> int:
        return self.image_size // self.patch_size


DEFAULT_SCENE_CONFIG = SceneConfig()


@dataclass(frozen=True)
class SceneObject:
    """One shape: its colour, kind and cell (row 0 = top, col 0 = left)."""

    color: str
    shape: str
    row: int
    col: int


@dataclass(frozen=True)
class Scene:
    """A full scene description; (color, shape) pairs are unique, so "the red circle" names one object."""

    background: str
    objects: tuple[SceneObject, ...]
    config: SceneConfig = field(default_factory=SceneConfig)

    def count(self, shape: str) -> int:
        return sum(obj.shape == shape for obj in self.objects)

    def find(self, color: str, shape: str) -> SceneObject | None:
        return next((obj for obj in self.objects if obj.color == color and obj.shape == shape), None)

    def to_dict(self) -> dict:
        return {"background": self.background, "objects": [asdict(obj) for obj in self.objects], "config": asdict(self.config)}

    @classmethod
    def from_dict(cls, data: dict) -> Scene:
        return cls(
            background=data["background"],
            objects=tuple(SceneObject(**obj) for obj in data["objects"]),
            config=SceneConfig(**data.get("config", {})),
        )


def sample_scene(rng: np.random.Generator, config: SceneConfig = DEFAULT_SCENE_CONFIG) -> Scene:
    """Draws a scene: a background; one random "main" shape kind with a uniform count in 0..max_count and the
    other kinds with uniform counts in 0..max_other; distinct colours within a kind; distinct cells.

    With the defaults, a count question about the kind that has 3 or more objects if there is one, else about a
    random kind (`questions.sample_question`), has a uniform answer in 0..5 while scenes stay uncluttered.
    """
    background = str(rng.choice(list(BACKGROUNDS)))
    main = int(rng.integers(len(SHAPES)))
    counts = [int(rng.integers(0, (config.max_count if i == main else config.max_other) + 1)) for i in range(len(SHAPES))]
    cells = rng.choice(config.grid_size**2, size=sum(counts), replace=False)
    objects, start = [], 0
    for shape, count in zip(SHAPES, counts):
        for color in rng.choice(list(COLORS), size=count, replace=False):
            row, col = divmod(int(cells[start]), config.grid_size)
            objects.append(SceneObject(str(color), shape, row, col))
            start += 1
    objects.sort(key=lambda obj: (obj.row, obj.col))
    return Scene(background, tuple(objects), config)


def _draw_shape(draw: ImageDraw.ImageDraw, obj: SceneObject, cell_size: int) -> None:
    left, top = obj.col * cell_size, obj.row * cell_size
    right, bottom = left + cell_size - 1, top + cell_size - 1
    margin = cell_size // 8
    color = COLORS[obj.color]
    if obj.shape == "square":
        draw.rectangle((left + margin, top + margin, right - margin, bottom - margin), fill=color)
    elif obj.shape == "circle":
        draw.ellipse((left, top, right, bottom), fill=color)
    else:
        draw.polygon(((left, bottom), (right, bottom), ((left + right) / 2, top)), fill=color)


def render_scene(scene: Scene) -> Image.Image:
    """Draws the scene as an RGB image of `config.image_size` pixels per side."""
    size = scene.config.image_size
    image = Image.new("RGB", (size, size), BACKGROUNDS[scene.background])
    draw = ImageDraw.Draw(image)
    for obj in scene.objects:
        _draw_shape(draw, obj, scene.config.cell_size)
    return image


def patch_labels(scene: Scene) -> tuple[np.ndarray, np.ndarray]:
    """Dense per-patch labels in row-major patch order (every patch of an object's cell gets the object's labels).

    Returns:
        (colors, shapes): int64 arrays of shape [patches_per_side**2]; colors index `PATCH_COLORS` (the background
        colour for empty patches), shapes index `PATCH_SHAPES` (0 = "none").
    """
    config = scene.config
    side, per_cell = config.patches_per_side, config.cell_size // config.patch_size
    colors = np.full((side, side), PATCH_COLORS.index(scene.background), dtype=np.int64)
    shapes = np.zeros((side, side), dtype=np.int64)
    for obj in scene.objects:
        rows = slice(obj.row * per_cell, (obj.row + 1) * per_cell)
        cols = slice(obj.col * per_cell, (obj.col + 1) * per_cell)
        colors[rows, cols] = PATCH_COLORS.index(obj.color)
        shapes[rows, cols] = PATCH_SHAPES.index(obj.shape)
    return colors.reshape(-1), shapes.reshape(-1)


__all__ = [
    "BACKGROUNDS",
    "COLORS",
    "DEFAULT_SCENE_CONFIG",
    "PATCH_COLORS",
    "PATCH_SHAPES",
    "SHAPES",
    "Scene",
    "SceneConfig",
    "SceneObject",
    "patch_labels",
    "render_scene",
    "sample_scene",
]
