"""Shapes-VQA: a deterministic synthetic visual question answering benchmark (scenes, questions, export)."""

from .export import DEFAULT_TEST_SCENES, SceneRecord, SplitFiles, build_split, export_split
from .questions import (
    ALL_FAMILIES,
    CAPTION_PROMPT,
    FAMILIES,
    Question,
    answer_question,
    can_ask,
    dense_caption,
    question_text,
    sample_question,
)
from .spatial_questions import SPATIAL_FAMILIES
from .scenes import (
    BACKGROUNDS,
    COLORS,
    DEFAULT_SCENE_CONFIG,
    PATCH_COLORS,
    PATCH_SHAPES,
    SHAPES,
    Scene,
    SceneConfig,
    SceneObject,
    patch_labels,
    render_scene,
    sample_scene,
)

__all__ = [
    "ALL_FAMILIES",
    "BACKGROUNDS",
    "CAPTION_PROMPT",
    "COLORS",
    "DEFAULT_SCENE_CONFIG",
    "DEFAULT_TEST_SCENES",
    "FAMILIES",
    "PATCH_COLORS",
    "PATCH_SHAPES",
    "SHAPES",
    "SPATIAL_FAMILIES",
    "Question",
    "Scene",
    "SceneConfig",
    "SceneObject",
    "SceneRecord",
    "SplitFiles",
    "answer_question",
    "build_split",
    "can_ask",
    "dense_caption",
    "export_split",
    "patch_labels",
    "question_text",
    "render_scene",
    "sample_question",
    "sample_scene",
]
