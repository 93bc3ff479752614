"""Named model configurations: the paper's 7B model and the tiny ones used in tests and the demo."""

from __future__ import annotations

from typing import Any

from mqt_llava.modeling_mqt_llava.configuration_mqt_llava import MqtLlavaConfig


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overrides.items():
        merged[key] = _merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
    return merged


MQT_LLAVA_7B: dict[str, Any] = {
    # CLIP ViT-L/14 at 336 px, frozen, features of the second-to-last layer without CLS (24 x 24 = 576 of width 1024)
    "vision_config": {
        "model_type": "clip_vision_model",
        "hidden_size": 1024,
        "intermediate_size": 4096,
        "num_hidden_layers": 24,
        "num_attention_heads": 16,
        "image_size": 336,
        "patch_size": 14,
        "projection_dim": 768,
        "hidden_act": "quick_gelu",
        "layer_norm_eps": 1e-5,
    },
    # Vicuna-7B v1.5 (Llama), 32000 tokens plus the added <image> token
    "text_config": {
        "model_type": "llama",
        "hidden_size": 4096,
        "intermediate_size": 11008,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 32,
        "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-5,
        "vocab_size": 32001,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "pad_token_id": 0,
    },
    "num_queries": 256,
    "query_num_heads": 16,
    "query_num_layers": 1,
    "query_key_source": "position",
    "vision_feature_layer": -2,
    "vision_feature_select_strategy": "default",
    "image_token_id": 32000,
}

TEST_TINY: dict[str, Any] = {
    "vision_config": {
        "model_type": "clip_vision_model",
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "image_size": 32,
        "patch_size": 8,
    },
    "text_config": {
        "model_type": "llama",
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 512,
        "vocab_size": 256,
    },
    "num_queries": 16,
    "query_num_heads": 4,
    "image_token_id": 4,  # the id of <image> in processing.tokenizer.build_word_tokenizer
}

# The demo's shipped model (`mqt-llava demo`): a CLIP-style tower on 64 px Shapes-VQA scenes (8 x 8 patches of 8 px;
# each object fills 2 x 2 patches), M = 64 queries (one per patch), one attention head so the position-only attention
# can be local in both grid axes, and a small Llama trained from scratch. Token ids match the demo's word-level tokenizer (vocab_size is set from it).
MQT_LLAVA_TINY: dict[str, Any] = {
    "vision_config": {
        "model_type": "clip_vision_model",
        "hidden_size": 128,
        "intermediate_size": 512,
        "num_hidden_layers": 3,
        "num_attention_heads": 4,
        "image_size": 64,
        "patch_size": 8,
    },
    "text_config": {
        "model_type": "llama",
        "hidden_size": 128,
        "intermediate_size": 384,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
        "max_position_embeddings": 512,
        "vocab_size": 128,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "pad_token_id": 3,
    },
    "num_queries": 64,
    "query_num_heads": 16,
    "vision_feature_layer": -1,
    "image_token_id": 4,
}

PRESETS: dict[str, dict[str, Any]] = {
    "mqt-llava-7b": MQT_LLAVA_7B,
    "test-tiny": TEST_TINY,
    "mqt-llava-tiny": MQT_LLAVA_TINY,
}


def preset_config(name: str, **overrides: Any) -> MqtLlavaConfig:
    """The config of preset `name`, with `overrides` merged in (nested dicts for `vision_config` / `text_config`)."""
    if name not in PRESETS:
        raise ValueError(f"Unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return MqtLlavaConfig(**_merge(PRESETS[name], overrides))


__all__ = ["PRESETS", "preset_config"]
