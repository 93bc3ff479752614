"""Builds the demo's tokenizer, processor and randomly initialised `mqt-llava-tiny` model."""

from __future__ import annotations

import itertools

import torch
from transformers import PreTrainedTokenizerFast

from mqt_llava.evaluation.shapes_vqa import (
    BACKGROUNDS,
    CAPTION_PROMPT,
    COLORS,
    SHAPES,
    SceneConfig,
    question_text,
)
from mqt_llava.modeling_mqt_llava import MqtLlavaConfig, MqtLlavaForConditionalGeneration
from mqt_llava.processing.build import build_processor
from mqt_llava.processing.processing_mqt_llava import VICUNA_SYSTEM_PROMPT, MqtLlavaProcessor
from mqt_llava.processing.tokenizer import build_word_tokenizer
from mqt_llava.tools.presets import preset_config

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


def locality_init_(model: MqtLlavaForConditionalGeneration, sharpness: float) -> None:
    """Starts the query transformer's position-only attention local: q_proj = k_proj = sharpness * identity.

    Keys are the fixed sin-cos table of the vision grid and query i starts as the table's row i, so each query then
    attends mostly to the patches around its own grid cell instead of averaging the whole image (a uniform start
    gives every visual token the same content, and training stalls on questions that need detail). Matryoshka
    training later widens the first queries. Needs one attention head, so each head sees both grid axes.
    """
    attention = model.model.query_transformer.layers[0].attention
    if attention.num_heads != 1:
        raise ValueError(f"locality_init_ needs query_num_heads=1, the model has {attention.num_heads}")
    with torch.no_grad():
        for linear in (attention.q_proj, attention.k_proj):
            linear.weight.copy_(torch.eye(linear.in_features) * sharpness)
            linear.bias.zero_()


def build_demo_model(
    processor: MqtLlavaProcessor, seed: int, preset: str = DEMO_PRESET, sharpness: float = 2.0
) -> MqtLlavaForConditionalGeneration:
    """A random `preset` model whose special token ids match `processor`'s tokenizer, with `locality_init_`."""
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
    if sharpness > 0:
        locality_init_(model, sharpness)
    return model


__all__ = ["DEMO_PRESET", "IMAGE_MEAN", "IMAGE_STD", "build_demo_model", "build_demo_processor", "build_demo_tokenizer", "locality_init_", "vocabulary_texts"]
