"""The demo model's starting point: its query transformer starts from the coarse-to-fine attention layout (the first
tokens pool whole quadrants, not single patches), and vision pre-training leaves each patch's place in the image
readable from its features."""

from __future__ import annotations

import pytest
import torch

from mqt_llava.demo.model_setup import DEMO_PRESET, build_demo_model, build_demo_processor
from mqt_llava.demo.query_layout import coarse_to_fine_layout, fit_attention_layout_
from mqt_llava.demo.train_pipeline import _patch_label_data
from mqt_llava.demo.vision_pretrain import patch_accuracy, pretrain_vision_tower
from mqt_llava.evaluation.shapes_vqa import DEFAULT_SCENE_CONFIG, PATCH_COLORS, PATCH_SHAPES, build_split
from mqt_llava.tools.presets import preset_config

SIDE = DEFAULT_SCENE_CONFIG.patches_per_side
CELL = DEFAULT_SCENE_CONFIG.cell_size // DEFAULT_SCENE_CONFIG.patch_size


@pytest.fixture(scope="module")
def processor():
    return build_demo_processor(DEFAULT_SCENE_CONFIG, num_queries=preset_config(DEMO_PRESET).num_queries)


def attention_maps(model) -> torch.Tensor:
    """The query transformer's attention at m = M for two random images: (2, heads, M, side, side)."""
    features = torch.randn(2, SIDE * SIDE, model.config.vision_config.hidden_size)
    with torch.no_grad():
        _, weights = model.model.query_transformer(features, model.config.num_queries, output_attentions=True)
    return weights[0].reshape(*weights[0].shape[:3], SIDE, SIDE)


def cell_mass(maps: torch.Tensor) -> torch.Tensor:
    """Attention maps (..., side, side) summed over each scene cell: (..., cells, cells)."""
    cells = SIDE // CELL
    return maps.reshape(*maps.shape[:-2], cells, CELL, cells, CELL).sum(dim=(-3, -1))


def check_coarse_to_fine(maps: torch.Tensor, tolerance: float) -> None:
    """Token 1 (heads averaged) spreads over the 4 cells of the top-left quadrant, each head of it reads one cell, and
    the first 4 tokens together read every cell of the image."""
    half = SIDE // 2
    token1 = maps[:, :, 0]  # (B, h, side, side)
    averaged = cell_mass(token1.mean(1))  # (B, cells, cells)
    assert averaged[:, :2, :2].sum(dim=(-2, -1)).min() > 1 - tolerance, averaged
    assert averaged[:, :2, :2].min() > 0.25 - tolerance, "token 1 must pool every cell of its quadrant"
    assert token1[..., :half, :half].mean(1).amax(dim=(-2, -1)).max() < 0.25, "token 1 must not sit on one patch"
    assert cell_mass(token1).flatten(2).max(-1).values.min() > 1 - tolerance, "each head of token 1 reads one cell"
    first_four = cell_mass(maps[:, :, :4].mean(1).sum(1))  # (B, cells, cells)
    assert first_four.min() > 0.25 - tolerance, "the first 4 tokens must read every cell"


def test_fresh_demo_model_starts_coarse_to_fine(processor):
    """Feature: the coarse-to-fine start (`fit_attention_layout_` in `build_demo_model`). Whatever the image, token 1
    pools a whole quadrant through heads that each read one cell, and tokens 1-4 read the whole image; the fit reaches
    the layout closely. Without it, fresh queries attend almost uniformly."""
    model = build_demo_model(processor, seed=0, scene_config=DEFAULT_SCENE_CONFIG).eval()
    check_coarse_to_fine(attention_maps(model), tolerance=0.05)
    uniform = attention_maps(build_demo_model(processor, seed=0, scene_config=DEFAULT_SCENE_CONFIG, layout=False))
    assert uniform.max() < 2.0 / (SIDE * SIDE)


def test_layout_rounds_cover_every_cell_through_every_head():
    """Feature: the layout's rounds. In the first 16 tokens every cell is read by all 16 heads (the whole value width),
    and tokens beyond 16 each read single patches."""
    config = preset_config(DEMO_PRESET)
    target = coarse_to_fine_layout(SIDE, CELL, config.num_queries, config.query_num_heads)  # (h, M, N)
    per_cell = cell_mass(target[:, :16].reshape(target.shape[0], 16, SIDE, SIDE))  # (h, 16, cells, cells)
    heads_reading = (per_cell > 0.5).any(dim=1)  # (h, cells, cells): this head reads this cell in some token
    assert heads_reading.all()
    assert target[:, 16:].max(-1).values.min() > 0.9


def test_layout_refuses_what_it_cannot_build(processor):
    """Feature: clear errors. A head count that does not split over a quadrant's cells, a layout of the wrong size,
    and content keys are refused with messages that name the problem."""
    with pytest.raises(ValueError, match="heads must split evenly"):
        coarse_to_fine_layout(SIDE, CELL, 64, 6)
    with pytest.raises(ValueError, match="divisible by 4"):
        coarse_to_fine_layout(SIDE, CELL, 62, 16)
    model = build_demo_model(processor, seed=0, scene_config=DEFAULT_SCENE_CONFIG, layout=False)
    with pytest.raises(ValueError, match="does not fit"):
        fit_attention_layout_(model.model.query_transformer, coarse_to_fine_layout(SIDE, CELL, 32, 16), steps=1)
    model.model.query_transformer.key_source = "content"
    with pytest.raises(ValueError, match="position-only keys"):
        fit_attention_layout_(model.model.query_transformer, coarse_to_fine_layout(SIDE, CELL, 64, 16), steps=1)


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
