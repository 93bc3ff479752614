"""The Matryoshka query transformer: M learned queries cross-attend to vision features; any first m of them are used.

Queries never attend to each other, so the output for query i depends only on query i and the image: the visual
tokens for m are exactly the first m of those for any larger m.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from transformers.activations import ACT2FN
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

from .configuration_mqt_llava import MqtLlavaConfig


def sincos_1d(dim: int, positions: torch.Tensor) -> torch.Tensor:
    """Fixed sin-cos encoding of 1D positions: `positions` (N,) -> (N, dim), sines in the first half."""
    omega = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float64) / (dim / 2.0))
    angles = positions.to(torch.float64)[:, None] * omega[None, :]  # (N, dim/2)
    return torch.cat([angles.sin(), angles.cos()], dim=1)


def sincos_2d(dim: int, grid_size: int) -> torch.Tensor:
    """Fixed 2D sin-cos table of a square grid, row-major: (grid_size**2, dim), float32.

    The first half of each row encodes the column index, the second half the row index (the MAE convention, which
    the released checkpoint's stored table follows).
    """
    if dim % 4:
        raise ValueError(f"the 2D sin-cos table needs a width divisible by 4, got {dim}")
    rows, cols = torch.meshgrid(torch.arange(grid_size), torch.arange(grid_size), indexing="ij")
    table = torch.cat([sincos_1d(dim // 2, cols.flatten()), sincos_1d(dim // 2, rows.flatten())], dim=1)
    return table.to(torch.float32)


def resize_position_table(table: torch.Tensor, num_positions: int) -> torch.Tensor:
    """Resizes a square (S*S, D) position table bicubically to (num_positions, D), num_positions a square number."""
    source, target = math.isqrt(table.shape[0]), math.isqrt(num_positions)
    if target * target != num_positions:
        raise ValueError(f"the vision tower must give a square grid of features, got {num_positions}")
    if source == target:
        return table
    grid = table.float().reshape(1, source, source, -1).permute(0, 3, 1, 2)  # (1, D, S, S)
    grid = F.interpolate(grid, size=(target, target), mode="bicubic", align_corners=False)
    return grid.permute(0, 2, 3, 1).reshape(num_positions, -1).to(table.dtype)  # (T*T, D)


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention written out: query (B, h, m, hd), key and value (B, h, N, hd) -> output (B, m, h, hd) and the
    softmax weights (B, h, m, N), the signature of transformers' attention functions."""
    scores = query @ key.transpose(-1, -2) * scaling  # (B, h, m, N)
    if attention_mask is not None:
        scores = scores + attention_mask
    weights = scores.softmax(dim=-1, dtype=torch.float32).to(query.dtype)
    weights = F.dropout(weights, p=dropout, training=module.training)
    return (weights @ value).transpose(1, 2).contiguous(), weights


class QueryCrossAttention(nn.Module):
    """Multi-head cross-attention with separate q/k/v/o projections (so LoRA can target each).

    The attention itself runs through transformers' attention functions, so `attn_implementation` ("eager", "sdpa",
    "flash_attention_2", a kernel) means the same here as in the vision tower and the language model. Queries attend
    to every key (no mask, not causal). Asking for the attention weights runs the eager function, the only one that
    returns them.
    """

    is_causal = False

    def __init__(self, config: MqtLlavaConfig):
        super().__init__()
        self.config = config
        self.hidden_size = config.vision_config.hidden_size
        self.num_heads = config.query_num_heads
        self.head_dim = self.hidden_size // self.num_heads
        self.scaling = self.head_dim**-0.5
        self.q_proj = nn.Linear(self.hidden_size, self.hidden_size)
        self.k_proj = nn.Linear(self.hidden_size, self.hidden_size)
        self.v_proj = nn.Linear(self.hidden_size, self.hidden_size)
        self.o_proj = nn.Linear(self.hidden_size, self.hidden_size)

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        return x.view(batch, length, self.num_heads, self.head_dim).transpose(1, 2)  # (B, h, L, hd)

    def forward(
        self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, output_attentions: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """query (B or 1, m, D), key (B or 1, N, D), value (B, N, D) -> output (B, m, D), weights (B, h, m, N) or None."""
        batch = value.shape[0]
        # the first layer's queries (and position-only keys) are shared by every image: broadcast them to the batch
        q = self._split_heads(self.q_proj(query)).expand(batch, -1, -1, -1)  # (B, h, m, hd)
        k = self._split_heads(self.k_proj(key)).expand(batch, -1, -1, -1)  # (B, h, N, hd)
        v = self._split_heads(self.v_proj(value))  # (B, h, N, hd)
        attention = eager_attention_forward
        if not output_attentions:
            attention = ALL_ATTENTION_FUNCTIONS.get_interface(self.config._attn_implementation, eager_attention_forward)
        out, weights = attention(self, q, k, v, None, scaling=self.scaling, dropout=0.0, is_causal=False)
        out = out.reshape(batch, -1, self.hidden_size)  # (B, m, D)
        return self.o_proj(out), (weights if output_attentions else None)


class QueryFeedForward(nn.Module):
    def __init__(self, config: MqtLlavaConfig):
        super().__init__()
        hidden = config.vision_config.hidden_size
        self.fc1 = nn.Linear(hidden, int(hidden * config.query_ffn_ratio))
        self.act = ACT2FN["gelu"]
        self.fc2 = nn.Linear(int(hidden * config.query_ffn_ratio), hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class QueryLayer(GradientCheckpointingLayer):
    """One cross-attention layer. Layer 0 is the released layer (no residual, no feed-forward); later layers add a
    residual connection and a feed-forward block."""

    def __init__(self, config: MqtLlavaConfig, layer_idx: int):
        super().__init__()
        hidden, eps = config.vision_config.hidden_size, config.query_layer_norm_eps
        self.query_norm = nn.LayerNorm(hidden, eps=eps)
        self.key_norm = nn.LayerNorm(hidden, eps=eps)
        self.value_norm = nn.LayerNorm(hidden, eps=eps)
        self.attention = QueryCrossAttention(config)
        self.is_first = layer_idx == 0
        if not self.is_first:
            self.ffn_norm = nn.LayerNorm(hidden, eps=eps)
            self.ffn = QueryFeedForward(config)

    def forward(
        self,
        hidden_states: torch.Tensor,
        query_position: torch.Tensor,
        keys: torch.Tensor,
        values: torch.Tensor,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """hidden_states (B or 1, m, D), query_position (m, D), keys (B or 1, N, D), values (B, N, D) -> (B, m, D)."""
        attended, weights = self.attention(
            self.query_norm(hidden_states + query_position), self.key_norm(keys), self.value_norm(values), output_attentions
        )
        if self.is_first:
            return attended, weights
        hidden_states = hidden_states + attended
        hidden_states = hidden_states + self.ffn(self.ffn_norm(hidden_states))
        return hidden_states, weights


class MatryoshkaQueryTransformer(nn.Module):
    """Turns vision features into m visual tokens for any m in 1..M.

    Released semantics (one layer, `query_key_source="position"`):
    query = LN_q(query[:m] + pos_q[:m]); key = LN_k(pos_k); value = LN_v(features); out = MHA(query, key, value) @ proj,
    where pos_q is the fixed sin-cos table of the query grid and pos_k that table resized bicubically to the vision
    grid. With `"content"`, key = LN_k(features + pos_k).
    """

    def __init__(self, config: MqtLlavaConfig):
        super().__init__()
        hidden = config.vision_config.hidden_size
        self.num_queries = config.num_queries
        self.key_source = config.query_key_source
        self.query = nn.Parameter(torch.zeros(config.num_queries, hidden))
        self.register_buffer("query_position", sincos_2d(hidden, math.isqrt(config.num_queries)), persistent=True)
        self.layers = nn.ModuleList([QueryLayer(config, i) for i in range(config.query_num_layers)])
        self.proj = nn.Linear(hidden, config.text_config.hidden_size, bias=False)

    def key_position(self, num_positions: int) -> torch.Tensor:
        """The key position table for a vision grid of `num_positions` features: (num_positions, D)."""
        return resize_position_table(self.query_position, num_positions)

    def forward(
        self,
        vision_features: torch.Tensor,
        num_visual_tokens: int,
        output_attentions: bool = False,
        first_query: int = 0,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...] | None]:
        """vision_features (B, N, D) -> visual tokens (B, m, text_hidden), and per-layer weights (B, h, m, N) if asked.

        With `first_query` = f > 0 only the tokens of queries f..m-1 are computed, (B, m - f, text_hidden): queries never
        attend to each other, so they equal those rows of the full output (how `"auto"` adds tokens when it escalates).
        """
        m = num_visual_tokens
        if not 0 <= first_query < m:
            raise ValueError(f"first_query must be in 0..{m - 1} (num_visual_tokens - 1), got {first_query}")
        vision_features = vision_features.to(self.query.dtype)  # the tower may run in another dtype (e.g. 4-bit setups)
        query_position = self.query_position[first_query:m].to(vision_features.dtype)  # (m - f, D)
        key_position = self.key_position(vision_features.shape[1]).to(vision_features.dtype)  # (N, D)
        if self.key_source == "position":
            keys = key_position.unsqueeze(0)  # (1, N, D): the same keys for every image
        else:
            keys = vision_features + key_position  # (B, N, D)
        hidden_states = self.query[first_query:m].unsqueeze(0).to(vision_features.dtype)  # (1, m - f, D)
        all_weights = []
        for layer in self.layers:
            hidden_states, weights = layer(hidden_states, query_position, keys, vision_features, output_attentions)
            all_weights.append(weights)
        return self.proj(hidden_states), (tuple(all_weights) if output_attentions else None)


__all__ = ["MatryoshkaQueryTransformer", "sincos_2d", "resize_position_table"]
