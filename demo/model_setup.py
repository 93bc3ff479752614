"""Builds the demo's tokenizer, processor and randomly initialised `mqt-llava-tiny` model."""

from __future__ import annotations

import itertools
import logging

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

from .query_layout import coarse_to_fine_layout, fit_attention_layout_

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


def build_demo_model(
    processor: MqtLlavaProcessor, seed: int, scene_config: SceneConfig, preset: str = DEMO_PRESET, layout: bool = True
) -> MqtLlavaForConditionalGeneration:
    """A random `preset` model whose special token ids match `processor`'s tokenizer; with `layout`, its query
    transformer starts from the coarse-to-fine attention layout (`query_layout`) over `scene_config`'s cells."""
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
    if layout:
        side = config.vision_config.image_size // config.vision_config.patch_size
        target = coarse_to_fine_layout(side, scene_config.cell_size // scene_config.patch_size, config.num_queries, config.query_num_heads)
        divergence = fit_attention_layout_(model.model.query_transformer, target)
        logger.info("query transformer fitted to the coarse-to-fine layout (KL %.2g nats)", divergence)
    return model


__all__ = ["DEMO_PRESET", "IMAGE_MEAN", "IMAGE_STD", "build_demo_model", "build_demo_processor", "build_demo_tokenizer", "vocabulary_texts"]
