"""The demo model's starting point: `locality_init_` makes query i of the query transformer start on patch i, and
vision pre-training leaves each patch's place in the image readable from its features."""

from __future__ import annotations

import pytest
import torch

from mqt_llava.demo.model_setup import DEMO_PRESET, build_demo_model, build_demo_processor, locality_init_
from mqt_llava.demo.train_pipeline import _patch_label_data
from mqt_llava.demo.vision_pretrain import patch_accuracy, pretrain_vision_tower
from mqt_llava.evaluation.shapes_vqa import DEFAULT_SCENE_CONFIG, PATCH_COLORS, PATCH_SHAPES, build_split
from mqt_llava.tools.presets import preset_config


@pytest.fixture(scope="module")
def processor():
    return build_demo_processor(DEFAULT_SCENE_CONFIG, num_queries=preset_config(DEMO_PRESET).num_queries)


def _attention(model) -> torch.Tensor:
    """The query transformer's attention weights at m = M for two random images: (2, M, patches)."""
    side = DEFAULT_SCENE_CONFIG.patches_per_side
    features = torch.randn(2, side * side, model.config.vision_config.hidden_size)
    with torch.no_grad():
        _, weights = model.model.query_transformer(features, model.config.num_queries, output_attentions=True)
    return weights[0][:, 0]


def test_locality_init_points_query_i_at_patch_i(processor):
    """Feature: `locality_init_`. In a freshly built demo model, query i attends most to patch i of the 8 x 8 vision
    grid whatever the image, with at least 0.3 of its weight; without it the fresh queries attend almost uniformly
    (every visual token would carry the same content)."""
    weights = _attention(build_demo_model(processor, seed=0).eval())
    num_queries = weights.shape[1]
    assert torch.equal(weights.argmax(-1), torch.arange(num_queries).expand(2, -1))
    assert weights.max(-1).values.min() > 0.3
    uniform = _attention(build_demo_model(processor, seed=0, sharpness=0.0).eval())
    assert uniform.max() < 2.0 / uniform.shape[-1]


def test_locality_init_refuses_several_heads(processor):
    """Feature: clear errors. The position-only local start needs one attention head; a model with more is refused
    by name."""
    model = build_demo_model(processor, seed=0, sharpness=0.0)
    model.model.query_transformer.layers[0].attention.num_heads = 2
    with pytest.raises(ValueError, match="query_num_heads=1"):
        locality_init_(model, 2.0)


def test_vision_pretraining_keeps_patch_row_and_column(processor):
    """Protects the row and column heads: a short pre-training teaches held-out patches' grid row and column (chance:
    1 in 8) along with colour, so the frozen tower's features say where each patch is."""
    config = preset_config(DEMO_PRESET, vision_config={"num_hidden_layers": 1}).vision_config
    train = _patch_label_data(build_split("train", 64, 0), processor.image_processor)
    held_out = _patch_label_data(build_split("check", 16, 0), processor.image_processor)
    classifier = pretrain_vision_tower(config, -1, train, len(PATCH_COLORS), len(PATCH_SHAPES), steps=60, batch_size=16)
    accuracy = patch_accuracy(classifier, held_out)
    side = DEFAULT_SCENE_CONFIG.patches_per_side
    assert torch.equal(classifier.grid_labels(1)[1][0], torch.arange(side * side) % side)
    assert accuracy["row"] > 0.5 and accuracy["column"] > 0.5, accuracy
