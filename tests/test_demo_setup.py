"""The demo model's starting point: `locality_init_` makes query i of the query transformer start on patch i."""

from __future__ import annotations

import pytest
import torch

from evaluation.demo_pipeline.model_setup import DEMO_PRESET, build_demo_model, build_demo_processor, locality_init_
from evaluation.shapes_vqa import DEFAULT_SCENE_CONFIG
from modeling_mqt_llava.presets import preset_config


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
