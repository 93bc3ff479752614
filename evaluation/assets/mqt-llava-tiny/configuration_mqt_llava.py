"""Configuration of MQT-LLaVA: a vision tower, a Matryoshka query transformer and a decoder language model."""

from __future__ import annotations

import math

from transformers import AutoConfig, PretrainedConfig
from transformers.utils import logging

logger = logging.get_logger(__name__)

KEY_SOURCES = ("position", "content")
SELECT_STRATEGIES = ("default", "full")

# Where a saved folder's remote code lives, for `from_pretrained(..., trust_remote_code=True)`.
AUTO_MAP = {
    "AutoConfig": "configuration_mqt_llava.MqtLlavaConfig",
    "AutoModel": "modeling_mqt_llava.MqtLlavaModel",
    "AutoModelForImageTextToText": "modeling_mqt_llava.MqtLlavaForConditionalGeneration",
    "AutoProcessor": "processing_mqt_llava.MqtLlavaProcessor",
}


def check_num_visual_tokens(value: object, num_queries: int, name: str = "num_visual_tokens") -> int:
    """Returns `value` if it is an integer in 1..num_queries, else raises a `ValueError` naming the valid range."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= num_queries:
        raise ValueError(f"{name} must be an integer in 1..{num_queries} (the model's number of queries), got {value!r}")
    return value


def _build_sub_config(value: PretrainedConfig | dict | None, default_type: str) -> PretrainedConfig:
    if isinstance(value, PretrainedConfig):
        return value
    value = dict(value or {})
    model_type = value.pop("model_type", default_type)
    return AutoConfig.for_model(model_type, **value)


class MqtLlavaConfig(PretrainedConfig):
    r"""
    Configuration of an MQT-LLaVA model.

    Args:
        vision_config (`dict` or `PretrainedConfig`, *optional*):
            Vision tower config (`clip_vision_model` or `siglip_vision_model`), built through `AutoConfig`.
        text_config (`dict` or `PretrainedConfig`, *optional*):
            Decoder language model config (`llama`, `qwen2`, ...), built through `AutoConfig`.
        num_queries (`int`, defaults to 256):
            M, the number of learned queries and the largest number of visual tokens per image. Must be a square
            number: the queries sit on a sqrt(M) x sqrt(M) grid for their 2D sin-cos positions.
        query_num_heads (`int`, defaults to 16):
            Attention heads of the query transformer; must divide the vision hidden size.
        query_num_layers (`int`, defaults to 1):
            Cross-attention layers. The first is the released single cross-attention; every further layer adds a
            residual cross-attention and a feed-forward block (queries never attend to each other, so the first m
            outputs never depend on queries beyond m).
        query_key_source (`str`, defaults to `"position"`):
            `"position"`: keys are the key position table only (the released checkpoint's semantics: the attention
            pattern is the same for every image). `"content"`: keys are vision features plus positions.
        query_ffn_ratio (`float`, defaults to 4.0):
            Feed-forward width of the extra layers, as a multiple of the vision hidden size.
        query_layer_norm_eps (`float`, defaults to 1e-6):
            Epsilon of the query transformer's LayerNorms.
        vision_feature_layer (`int`, defaults to -2):
            Hidden-state index of the vision tower whose features feed the query transformer.
        vision_feature_select_strategy (`str`, defaults to `"default"`):
            `"default"` drops the first (CLS) token, `"full"` keeps every token (SigLIP has no CLS).
        image_token_id (`int`, defaults to 32000):
            Token id of the image placeholder.
        num_visual_tokens (`int`, *optional*):
            Default m of `get_image_features` when none is given; `None` means M. Generation reads m from the
            prompt (see the processor) and from `generation_config.num_visual_tokens`.
    """

    model_type = "mqt_llava"
    sub_configs = {"text_config": AutoConfig, "vision_config": AutoConfig}

    def __init__(
        self,
        vision_config: PretrainedConfig | dict | None = None,
        text_config: PretrainedConfig | dict | None = None,
        num_queries: int = 256,
        query_num_heads: int = 16,
        query_num_layers: int = 1,
        query_key_source: str = "position",
        query_ffn_ratio: float = 4.0,
        query_layer_norm_eps: float = 1e-6,
        vision_feature_layer: int = -2,
        vision_feature_select_strategy: str = "default",
        image_token_id: int = 32000,
        num_visual_tokens: int | None = None,
        tie_word_embeddings: bool = False,
        **kwargs,
    ):
        self.vision_config = _build_sub_config(vision_config, "clip_vision_model")
        self.text_config = _build_sub_config(text_config, "llama")
        if isinstance(num_queries, bool) or not isinstance(num_queries, int) or num_queries < 1:
            raise ValueError(f"num_queries must be a positive integer, got {num_queries!r}")
        if math.isqrt(num_queries) ** 2 != num_queries:
            raise ValueError(f"num_queries must be a square number (queries sit on a square grid), got {num_queries}")
        if query_key_source not in KEY_SOURCES:
            raise ValueError(f"query_key_source must be one of {KEY_SOURCES}, got {query_key_source!r}")
        if vision_feature_select_strategy not in SELECT_STRATEGIES:
            raise ValueError(
                f"vision_feature_select_strategy must be one of {SELECT_STRATEGIES}, got {vision_feature_select_strategy!r}"
            )
        if query_num_layers < 1:
            raise ValueError(f"query_num_layers must be at least 1, got {query_num_layers}")
        if self.vision_config.hidden_size % query_num_heads:
            raise ValueError(
                f"query_num_heads ({query_num_heads}) must divide the vision hidden size ({self.vision_config.hidden_size})"
            )
        if num_visual_tokens is not None:
            check_num_visual_tokens(num_visual_tokens, num_queries)
        self.num_queries = num_queries
        self.query_num_heads = query_num_heads
        self.query_num_layers = query_num_layers
        self.query_key_source = query_key_source
        self.query_ffn_ratio = query_ffn_ratio
        self.query_layer_norm_eps = query_layer_norm_eps
        self.vision_feature_layer = vision_feature_layer
        self.vision_feature_select_strategy = vision_feature_select_strategy
        self.image_token_id = image_token_id
        self.num_visual_tokens = num_visual_tokens
        kwargs["auto_map"] = {**AUTO_MAP, **(kwargs.get("auto_map") or {})}
        super().__init__(tie_word_embeddings=tie_word_embeddings, **kwargs)


# Saved folders carry this file and an `auto_map` entry, so they load with `trust_remote_code=True`.
MqtLlavaConfig.register_for_auto_class("AutoConfig")

__all__ = ["MqtLlavaConfig", "check_num_visual_tokens"]
