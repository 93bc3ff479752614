"""The demo model's coarse-to-fine query start: every prefix of the queries covers the image, coarse to fine."""

from __future__ import annotations

import pytest
import torch

from evaluation.demo_pipeline.model_setup import build_demo_model, build_demo_processor, quadtree_regions
from evaluation.shapes_vqa import DEFAULT_SCENE_CONFIG


def test_quadtree_levels_and_spread_order():
    """Protects the layout: whole grid, then 4 quadrants, then 16 squares, and a level's prefix is spread out."""
    squares = quadtree_regions(8, 64)
    assert squares[0] == (0, 0, 8)
    assert sorted(squares[1:5]) == [(0, 0, 4), (0, 4, 4), (4, 0, 4), (4, 4, 4)]
    assert sorted(squares[5:21]) == [(row, col, 2) for row in range(0, 8, 2) for col in range(0, 8, 2)]
    assert {(row >= 4, col >= 4) for row, col, _ in squares[5:9]} == {(False, False), (False, True), (True, False), (True, True)}
    assert all(size == 1 for _, _, size in squares[21:]) and len(set(squares)) == 64
    with pytest.raises(ValueError, match="6 x 6"):
        quadtree_regions(6, 4)


def test_initial_attention_follows_the_quadtree():
    """Protects `coarse_to_fine_init_`: query i attends to square i of the quadtree, in the real query transformer."""
    processor = build_demo_processor(DEFAULT_SCENE_CONFIG, num_queries=64)
    model = build_demo_model(processor, seed=0)
    transformer = model.model.query_transformer
    side = DEFAULT_SCENE_CONFIG.patches_per_side
    features = torch.randn(2, side * side, transformer.query.shape[1])
    _, weights = transformer(features, 64, output_attentions=True)
    weights = weights[0][:, 0].reshape(2, 64, side, side)  # (B, m, rows, cols)
    for i, (top, left, size) in enumerate(quadtree_regions(side, 64)):
        inside = weights[:, i, top : top + size, left : left + size].sum(dim=(-1, -2))
        assert inside.min() > 0.99, f"query {i} puts only {inside.min():.3f} of its attention on its square"
    assert torch.allclose(weights[:, 0], torch.full_like(weights[:, 0], 1 / side**2), atol=1e-4), "query 0 sees all"
