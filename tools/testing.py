"""Tiny, randomly initialised models and synthetic images for tests and quick local runs (no downloads)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from mqt_llava.modeling_mqt_llava.modeling_mqt_llava import MqtLlavaForConditionalGeneration
from mqt_llava.processing.build import build_processor
from mqt_llava.processing.processing_mqt_llava import VICUNA_SYSTEM_PROMPT
from mqt_llava.processing.tokenizer import build_word_tokenizer
from mqt_llava.tools.presets import preset_config

TINY_CORPUS = [
    VICUNA_SYSTEM_PROMPT,
    "USER: ASSISTANT: what is in the image ? describe the picture . how many shapes are there ?",
    "red green blue yellow white black circle square triangle left right top bottom center yes no",
    "zero one two three four five six seven eight nine ten a an the is are of in on and",
]


def make_image(seed: int, size: int | tuple[int, int] = 32) -> Image.Image:
    """A deterministic RGB noise image with a coloured rectangle; `size` is a side or (width, height)."""
    width, height = (size, size) if isinstance(size, int) else size
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    top, left = rng.integers(0, max(1, height // 2)), rng.integers(0, max(1, width // 2))
    pixels[top : top + height // 2, left : left + width // 2] = rng.integers(0, 256, size=3, dtype=np.uint8)
    return Image.fromarray(pixels)


def build_tiny_model(seed: int = 0, **config_overrides: Any):
    """A randomly initialised tiny model and its processor: `(model, processor)`, from the `test-tiny` preset."""
    tokenizer = build_word_tokenizer(TINY_CORPUS)
    text_ids = {
        "vocab_size": len(tokenizer),
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    overrides = {"image_token_id": tokenizer.convert_tokens_to_ids("<image>"), **config_overrides}
    overrides["text_config"] = {**text_ids, **config_overrides.get("text_config", {})}
    config = preset_config("test-tiny", **overrides)
    torch.manual_seed(seed)
    model = MqtLlavaForConditionalGeneration(config).eval()
    processor = build_processor(
        tokenizer, image_size=config.vision_config.image_size, num_queries=config.num_queries
    )
    return model, processor


def save_tiny_model(out_dir: str | Path, seed: int = 0, **config_overrides: Any) -> Path:
    """Writes a complete tiny model folder (config, safetensors, remote code, processor, generation config)."""
    out_dir = Path(out_dir)
    model, processor = build_tiny_model(seed, **config_overrides)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return out_dir


__all__ = ["build_tiny_model", "make_image", "save_tiny_model"]
