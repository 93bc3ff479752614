"""Builds an `MqtLlavaProcessor` from a tokenizer and image settings, with the LLaVA pad-to-square image processor."""

from __future__ import annotations

from transformers import LlavaImageProcessorPil, PreTrainedTokenizerBase
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

from .processing_mqt_llava import MqtLlavaProcessor


def build_image_processor(
    image_size: int,
    image_mean: tuple[float, float, float] = tuple(OPENAI_CLIP_MEAN),
    image_std: tuple[float, float, float] = tuple(OPENAI_CLIP_STD),
) -> LlavaImageProcessorPil:
    """LLaVA's PIL image processor: pad to a square with the mean colour, resize to `image_size`, normalise."""
    return LlavaImageProcessorPil(
        do_pad=True,
        size={"shortest_edge": image_size},
        crop_size={"height": image_size, "width": image_size},
        image_mean=list(image_mean),
        image_std=list(image_std),
    )


def build_processor(
    tokenizer: PreTrainedTokenizerBase,
    image_size: int,
    num_queries: int,
    num_visual_tokens: int | None = None,
    image_mean: tuple[float, float, float] = tuple(OPENAI_CLIP_MEAN),
    image_std: tuple[float, float, float] = tuple(OPENAI_CLIP_STD),
    chat_template: str | None = None,
) -> MqtLlavaProcessor:
    """An `MqtLlavaProcessor` for a model with `num_queries` queries and a vision tower at `image_size` pixels.

    `chat_template=None` gives the Vicuna v1 template. The tokenizer must already have `<image>` as a special token;
    it is set to pad on the left, as batched generation needs.
    """
    # generation pads on the left (training collators ask for right padding explicitly); init_kwargs is what is saved
    tokenizer.padding_side = tokenizer.init_kwargs["padding_side"] = "left"
    return MqtLlavaProcessor(
        image_processor=build_image_processor(image_size, image_mean, image_std),
        tokenizer=tokenizer,
        chat_template=chat_template,
        num_queries=num_queries,
        num_visual_tokens=num_visual_tokens,
    )


__all__ = ["build_image_processor", "build_processor"]
