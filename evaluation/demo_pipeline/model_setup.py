"""Builds the demo's tokenizer, processor and randomly initialised `mqt-llava-tiny` model."""

from __future__ import annotations

import itertools
import logging
import math

import torch
from transformers import PreTrainedTokenizerFast

from evaluation.shapes_vqa import (
    BACKGROUNDS,
    CAPTION_PROMPT,
    COLORS,
    SHAPES,
    SceneConfig,
    question_text,
)
from modeling_mqt_llava import (
    MqtLlavaConfig,
    MqtLlavaForConditionalGeneration,
    MqtLlavaProcessor,
)
from modeling_mqt_llava.presets import preset_config
from processing.build import build_processor
from processing.processing_mqt_llava import VICUNA_SYSTEM_PROMPT
from processing.tokenizer import build_word_tokenizer

logger = logging.getLogger(__name__)

DEMO_PRESET = "mqt-llava-tiny"
# Shapes-VQA images are not photographs: normalise every channel around mid-grey.
IMAGE_MEAN = (0.5, 0.5, 0.5)
IMAGE_STD = (0.5, 0.5, 0.5)


def vocabulary_texts() -> list[str]:
    """Every word the Shapes-VQA prompts, answers and captions can use, plus the Vicuna template's words."""
    texts = [VICUNA_SYSTEM_PROMPT, "USER: ASSISTANT:", CAPTION_PROMPT, " ".join(BACKGROUNDS), " ".join(COLORS)]
    texts.append("background . , : top bottom left right yes no " + " ".join(str(n) for n in range(10)))
    for color, shape in itertools.product(COLORS, SHAPES):
        for family, axis in [("background", ""), ("color", ""), ("exists", ""), ("count", ""), ("position", "horizontal"), ("position", "vertical")]:
            texts.append(question_text(family, {"color": color, "shape": shape, "axis": axis}))
    return texts


def build_demo_tokenizer() -> PreTrainedTokenizerFast:
    """The word-level tokenizer of the demo model; ids 0..4 are `<unk> <s> </s> <pad> <image>`."""
    return build_word_tokenizer(vocabulary_texts())


def build_demo_processor(scene_config: SceneConfig, num_queries: int) -> MqtLlavaProcessor:
    """Tokenizer + LLaVA image processor at the scene's image size, normalised with `IMAGE_MEAN` / `IMAGE_STD`."""
    tokenizer = build_demo_tokenizer()
    return build_processor(tokenizer, scene_config.image_size, num_queries, image_mean=IMAGE_MEAN, image_std=IMAGE_STD)


def quadtree_regions(side: int, count: int) -> list[tuple[int, int, int]]:
    """The first `count` squares of a quadtree over a `side` x `side` grid, coarse to fine: the whole grid, its 4
    quadrants, their 16 sub-squares, ... as (top row, left column, size). Within a level, squares come in
    bit-reversed Morton order, so any prefix of a level is spread over the whole grid instead of filling its top rows.
    """
    if side & (side - 1) or count > sum(4**level for level in range(side.bit_length())):
        raise ValueError(f"a quadtree over a {side} x {side} grid (side a power of 2) cannot give {count} squares")
    squares: list[tuple[int, int, int]] = []
    level = 0
    while len(squares) < count:
        n, size = 2**level, side >> level

        def spread(cell: tuple[int, int], level: int = level) -> int:
            row, col = cell  # interleave the bits of row and column, least significant first
            shifts = [2 * (level - 1 - b) for b in range(level)]
            return sum((row >> b & 1) << (shift + 1) | (col >> b & 1) << shift for b, shift in enumerate(shifts))

        cells = sorted(((row, col) for row in range(n) for col in range(n)), key=spread)
        squares += [(row * size, col * size, size) for row, col in cells]
        level += 1
    return squares[:count]


def coarse_to_fine_init_(model: MqtLlavaForConditionalGeneration, score_gap: float = 8.0) -> torch.Tensor:
    """Starts query i of the first query-transformer layer attending to square i of `quadtree_regions` over the
    vision grid: query 0 sees the whole image, queries 1-4 its quadrants, then 16 squares, then single patches, so
    every prefix of the queries covers the image, coarse to fine.

    With position keys the attention does not depend on the image, so it can be set exactly: k_proj whitens the keys
    LN_k(pos_k); each query's LN_q input is a direction whose scores are 0 inside its square and -`score_gap` per grid
    axis outside it (least squares on the whitened keys), padded to unit variance with a direction no key sees; q_proj
    scales the scores. The demo's training keeps this layout frozen (`stages.QUERY_LAYOUT`). Needs one attention head
    and `query_key_source="position"`.

    Returns the attention mass each query puts inside its square, (M,).
    """
    transformer = model.model.query_transformer
    layer = transformer.layers[0]
    attention = layer.attention
    if attention.num_heads != 1 or transformer.key_source != "position":
        raise ValueError("coarse_to_fine_init_ needs query_num_heads=1 and query_key_source='position'")
    vision = model.config.vision_config
    side = vision.image_size // vision.patch_size
    hidden = transformer.query.shape[1]
    with torch.no_grad():
        positions = layer.key_norm(transformer.key_position(side * side)).double()  # (N, D), rows of mean 0
        _, singular, basis = torch.linalg.svd(positions, full_matrices=False)
        basis = basis[singular > singular[0] * 1e-6]  # (r, D): the table's rank is about 2 * side
        whitening = basis.T @ torch.diag(math.sqrt(side * side) / singular[: len(basis)]) @ basis  # (D, D)
        attention.k_proj.weight.copy_(whitening.T.float())
        attention.k_proj.bias.zero_()
        keys = positions @ whitening  # (N, D): every position direction at the same scale
        rows = torch.zeros(transformer.num_queries, side, 1, dtype=torch.bool)
        cols = torch.zeros(transformer.num_queries, 1, side, dtype=torch.bool)
        for i, (top, left, size) in enumerate(quadtree_regions(side, transformer.num_queries)):
            rows[i, top : top + size] = True
            cols[i, :, left : left + size] = True
        inside = (rows & cols).flatten(1)  # (M, N)
        # -score_gap per axis outside the square: sums of a row and a column term, which the table can represent
        targets = -score_gap * ((~rows).double() + (~cols).double()).flatten(1)
        targets -= targets.mean(dim=1, keepdim=True)
        directions = targets @ torch.linalg.pinv(keys, rtol=1e-6).T  # (M, D): keys @ direction ~ target scores
        free = torch.linalg.svd(torch.cat([keys, torch.ones(1, hidden, dtype=torch.float64)])).Vh[-1]  # sees no key
        scale = directions.norm(dim=1).max().item() * 1.01 / math.sqrt(hidden)
        directions = directions / scale
        padding = (hidden - directions.pow(2).sum(dim=1)).clamp_min(0).sqrt()
        inputs = directions + padding[:, None] * free  # (M, D), mean 0, variance 1: LN_q leaves them as they are
        transformer.query.copy_((inputs - transformer.query_position.double()).float())
        attention.q_proj.weight.copy_(torch.eye(hidden) * scale * math.sqrt(hidden))
        attention.q_proj.bias.zero_()
        _, weights = transformer(torch.zeros(1, side * side, hidden), transformer.num_queries, output_attentions=True)
    return (weights[0][0, 0] * inside).sum(dim=1)


def build_demo_model(
    processor: MqtLlavaProcessor, seed: int, preset: str = DEMO_PRESET, score_gap: float = 8.0
) -> MqtLlavaForConditionalGeneration:
    """A random `preset` model whose special token ids match `processor`'s tokenizer, with `coarse_to_fine_init_`
    (skipped when `score_gap` is 0)."""
    tokenizer = processor.tokenizer
    config: MqtLlavaConfig = preset_config(
        preset,
        image_token_id=processor.image_token_id,
        text_config={
            "vocab_size": len(tokenizer),
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        },
    )
    torch.manual_seed(seed)
    model = MqtLlavaForConditionalGeneration(config)
    if score_gap > 0:
        inside = coarse_to_fine_init_(model, score_gap)
        logger.info("query attention inside each query's square: min %.3f, mean %.3f", inside.min(), inside.mean())
    return model


__all__ = [
    "DEMO_PRESET",
    "IMAGE_MEAN",
    "IMAGE_STD",
    "build_demo_model",
    "build_demo_processor",
    "build_demo_tokenizer",
    "coarse_to_fine_init_",
    "quadtree_regions",
    "vocabulary_texts",
]
