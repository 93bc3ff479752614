"""MqtLlavaConfig: sub-configs through AutoConfig, exact round trips, and clear errors on bad fields."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoConfig

from mqt_llava import MqtLlavaConfig, MqtLlavaForConditionalGeneration
from mqt_llava.tools.presets import preset_config

SIGLIP_QWEN2 = {
    "vision_config": {
        "model_type": "siglip_vision_model",
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "image_size": 32,
        "patch_size": 8,
    },
    "text_config": {
        "model_type": "qwen2",
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "vocab_size": 100,
    },
    "num_queries": 16,
    "query_num_heads": 4,
    "vision_feature_select_strategy": "full",
    "vision_feature_layer": -1,
    "image_token_id": 99,
}


@pytest.mark.parametrize("overrides", [{}, SIGLIP_QWEN2], ids=["clip-llama", "siglip-qwen2"])
def test_config_round_trip_is_exact(tmp_path, overrides):
    """Protects serialisation: save -> AutoConfig.from_pretrained gives the same dict and sub-config classes."""
    config = preset_config("test-tiny", **overrides) if not overrides else MqtLlavaConfig(**overrides)
    config.save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(loaded, MqtLlavaConfig)
    expected, actual = config.to_dict(), loaded.to_dict()
    expected.pop("_name_or_path"), actual.pop("_name_or_path")
    assert actual == expected
    assert type(loaded.vision_config) is type(config.vision_config)
    assert type(loaded.text_config) is type(config.text_config)


def test_siglip_qwen2_model_runs():
    """Protects the 'any vision tower / any decoder' claim: SigLIP (no CLS, 'full') + Qwen2 run a forward pass."""
    model = MqtLlavaForConditionalGeneration(MqtLlavaConfig(**SIGLIP_QWEN2)).eval()
    input_ids = torch.tensor([[1, 2] + [99] * 5 + [3]])
    out = model(input_ids=input_ids, pixel_values=torch.randn(1, 3, 32, 32))
    assert out.logits.shape == (1, 8, 100)
    assert out.image_hidden_states.shape == (1, 5, 64)


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("num_queries", 10, "square"),
        ("num_queries", 0, "positive"),
        ("query_key_source", "keys", "query_key_source"),
        ("vision_feature_select_strategy", "cls", "vision_feature_select_strategy"),
        ("query_num_heads", 5, "divide"),
        ("num_visual_tokens", 17, "1..16"),
        ("num_visual_tokens", 0, "1..16"),
        ("num_visual_tokens", "4", "1..16"),
        ("num_visual_tokens", True, "1..16"),
        ("num_visual_tokens", 2.0, "1..16"),
    ],
)
def test_bad_config_fields_raise(field, value, match):
    """Protects input validation: each bad field raises a ValueError that names the problem."""
    with pytest.raises(ValueError, match=match):
        preset_config("test-tiny", **{field: value})
