"""The Matryoshka query transformer: nesting, the released checkpoint's exact semantics, attention backends."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers import AttentionInterface
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

from mqt_llava import MqtLlavaForConditionalGeneration
from mqt_llava.tools.presets import preset_config


def build(seed: int = 0, **overrides) -> MqtLlavaForConditionalGeneration:
    torch.manual_seed(seed)
    model = MqtLlavaForConditionalGeneration(preset_config("test-tiny", **overrides)).eval()
    # Random LayerNorm affines and biases so the reference check is not helped by identity defaults.
    with torch.no_grad():
        for name, param in model.model.query_transformer.named_parameters():
            if "norm" in name or name.endswith("bias"):
                param.normal_(0.0, 0.5)
    return model


def mae_sincos_2d(dim: int, grid: int) -> np.ndarray:
    """Independent numpy transcription of the 2D sin-cos table (first half: column index, second half: row)."""

    def one_d(d, pos):
        omega = 1.0 / 10000 ** (np.arange(d // 2, dtype=np.float64) / (d / 2.0))
        out = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    cols, rows = np.meshgrid(np.arange(grid, dtype=np.float64), np.arange(grid, dtype=np.float64))
    return np.concatenate([one_d(dim // 2, cols), one_d(dim // 2, rows)], axis=1)


@pytest.mark.parametrize("key_source", ["position", "content"])
@pytest.mark.parametrize("num_layers", [1, 3])
def test_nesting_first_m_tokens_equal_prefix_of_M(key_source, num_layers):
    """Protects the Matryoshka property: tokens at m are exactly the first m tokens at M."""
    model = build(query_key_source=key_source, query_num_layers=num_layers)
    pixels = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        full = model.get_image_features(pixels, 16)
        for m in (1, 5, 9):
            torch.testing.assert_close(model.get_image_features(pixels, m), full[:, :m], rtol=1e-5, atol=1e-6)


def test_position_keys_match_independent_reference():
    """Protects the released-checkpoint semantics (docs/architecture.md §1), recomputed from the formulas with
    torch's own multi_head_attention_forward: query = LN_q(query[:m] + pos_q[:m]), key = LN_k(pos_k),
    value = LN_v(features), out = MHA(...) @ proj."""
    model = build()
    qt = model.model.query_transformer
    layer = qt.layers[0]
    pixels = torch.randn(2, 3, 32, 32)
    dim = model.config.vision_config.hidden_size
    pos_q = torch.from_numpy(mae_sincos_2d(dim, 4)).float()  # 16 queries on a 4x4 grid
    torch.testing.assert_close(qt.query_position, pos_q)
    vision_grid = 4  # 32 px / patch 8
    pos_k = F.interpolate(
        pos_q.reshape(1, 4, 4, dim).permute(0, 3, 1, 2), size=(vision_grid, vision_grid), mode="bicubic", align_corners=False
    ).permute(0, 2, 3, 1).reshape(-1, dim)
    attn = layer.attention
    in_proj_weight = torch.cat([attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight])
    in_proj_bias = torch.cat([attn.q_proj.bias, attn.k_proj.bias, attn.v_proj.bias])
    with torch.no_grad():
        features = model.model.get_vision_features(pixels)  # (B, N, D)
        for m in (1, 7, 16):
            ours = model.get_image_features(pixels, m)
            query = layer.query_norm(qt.query[:m] + pos_q[:m])  # (m, D)
            key = layer.key_norm(pos_k)  # (N, D)
            references = []
            for b in range(pixels.shape[0]):
                value = layer.value_norm(features[b])
                out, _ = F.multi_head_attention_forward(
                    query[:, None], key[:, None], value[:, None], dim, model.config.query_num_heads,
                    in_proj_weight, in_proj_bias, None, None, False, 0.0,
                    attn.o_proj.weight, attn.o_proj.bias, training=False, need_weights=False,
                )
                references.append(out[:, 0] @ qt.proj.weight.T)
            torch.testing.assert_close(ours, torch.stack(references), rtol=1e-5, atol=1e-5)


def test_position_keys_make_attention_image_independent():
    """Protects the released semantics: with position-only keys the attention pattern is the same for every image,
    while content keys make it depend on the image."""
    pixels = torch.randn(2, 3, 32, 32)
    for key_source, same in (("position", True), ("content", False)):
        model = build(query_key_source=key_source)
        with torch.no_grad():
            features = model.model.get_vision_features(pixels)
            _, weights = model.model.query_transformer(features, 16, output_attentions=True)
        first, second = weights[0][0], weights[0][1]  # (heads, m, N) for each image
        assert torch.allclose(first, second, atol=1e-6) is same, key_source


@pytest.mark.parametrize("num_layers", [1, 2])
def test_sdpa_matches_eager(num_layers):
    """Protects the attention backends: SDPA and eager give the same visual tokens and logits."""
    outputs = {}
    for impl in ("sdpa", "eager"):
        torch.manual_seed(0)
        config = preset_config("test-tiny", query_num_layers=num_layers, query_key_source="content")
        model = MqtLlavaForConditionalGeneration._from_config(config, attn_implementation=impl).eval()
        input_ids = torch.tensor([[1, 5, 6] + [config.image_token_id] * 8 + [7, 8]])
        with torch.no_grad():
            outputs[impl] = model(input_ids=input_ids, pixel_values=torch.ones(1, 3, 32, 32)).logits
    torch.testing.assert_close(outputs["sdpa"], outputs["eager"], rtol=1e-4, atol=1e-5)


def test_attention_goes_through_the_requested_implementation():
    """Protects `attn_implementation` meaning the same in the query transformer as in the towers: a function
    registered with transformers' AttentionInterface is what the query transformer's attention calls, and its output
    is what the model uses."""
    calls = []

    def recording_sdpa(module, query, key, value, attention_mask, **kwargs):
        calls.append((type(module).__name__, tuple(query.shape), tuple(key.shape), kwargs.get("is_causal")))
        return ALL_ATTENTION_FUNCTIONS["sdpa"](module, query, key, value, attention_mask, **kwargs)

    AttentionInterface.register("recording_sdpa", recording_sdpa)
    models = {}
    for impl in ("recording_sdpa", "eager"):
        torch.manual_seed(0)
        config = preset_config("test-tiny", query_key_source="content")  # one config each: the model keeps it
        models[impl] = MqtLlavaForConditionalGeneration._from_config(config, attn_implementation=impl).eval()
    model, reference = models["recording_sdpa"], models["eager"]
    pixels = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        tokens = model.get_image_features(pixels, 5)
        expected = reference.get_image_features(pixels, 5)
    heads, head_dim = config.query_num_heads, config.vision_config.hidden_size // config.query_num_heads
    assert ("QueryCrossAttention", (2, heads, 5, head_dim), (2, heads, 16, head_dim), False) in calls
    torch.testing.assert_close(tokens, expected, rtol=1e-4, atol=1e-5)


def test_attention_weights_are_returned_under_any_implementation():
    """Protects output_attentions (the demo draws the query transformer's attention): with SDPA selected the weights
    still come back, equal to the eager model's, and each row sums to 1."""
    models = {}
    for impl in ("sdpa", "eager"):
        torch.manual_seed(0)
        config = preset_config("test-tiny", query_num_layers=2)
        models[impl] = MqtLlavaForConditionalGeneration._from_config(config, attn_implementation=impl).eval()
    sdpa, eager = models["sdpa"], models["eager"]
    assert sdpa.model.query_transformer.layers[0].attention.config._attn_implementation == "sdpa"
    pixels = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        _, sdpa_weights = sdpa.model.query_transformer(sdpa.model.get_vision_features(pixels), 9, output_attentions=True)
        _, eager_weights = eager.model.query_transformer(eager.model.get_vision_features(pixels), 9, output_attentions=True)
    assert len(sdpa_weights) == 2 and sdpa_weights[0].shape == (2, config.query_num_heads, 9, 16)
    for ours, theirs in zip(sdpa_weights, eager_weights):
        torch.testing.assert_close(ours, theirs)
        torch.testing.assert_close(ours.sum(-1), torch.ones_like(ours.sum(-1)))


def test_key_table_follows_any_vision_grid():
    """Protects 'no hard-coded grid': a 48 px tower (6x6 patches) gets a 36-row bicubic key table."""
    model = build(vision_config={"image_size": 48})
    with torch.no_grad():
        tokens = model.get_image_features(torch.randn(1, 3, 48, 48), 4)
    assert tokens.shape == (1, 4, model.config.text_config.hidden_size)
    assert model.model.query_transformer.key_position(36).shape == (36, model.config.vision_config.hidden_size)
