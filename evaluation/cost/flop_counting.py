"""Forward FLOPs of an image-text model, split into the parts a `generate` call runs.

Counted with `torch.utils.flop_counter.FlopCounterMode`, which sees every matmul, convolution and attention kernel
(a multiply-add is 2 FLOPs; element-wise work, norms and softmax are not counted). Conventions:

- attention: torch's own formula counts the full query x key square even when the kernel is causal; here a causal
  kernel is charged only for the query-key pairs its mask keeps (query i sees keys 0..i), which is the work a causal
  kernel does. Vision-tower and query-transformer attention is not causal and counts in full.
- prefill: what the first step of `generate` does once the image is encoded: the decoder over every prompt position
  and the language-model head on the last position only (`logits_to_keep=1`, as `generate` asks).
- decode step: one more token on top of the prompt's KV cache.

Full-size models are counted on fake tensors (`FakeTensorMode`): no weight is allocated, a 7B model takes seconds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.utils.flop_counter import FlopCounterMode
from transformers.initialization import no_init_weights

from mqt_llava.evaluation.cost.kv_cache import next_step_inputs

__all__ = ["PartFlops", "attention_flops", "count_flops", "count_on_fake_tensors", "count_parts"]

aten = torch.ops.aten


def attention_flops(
    query_shape: tuple[int, ...], key_shape: tuple[int, ...], value_shape: tuple[int, ...], is_causal: bool
) -> int:
    """FLOPs of softmax(q k^T) v for q (B, heads, Lq, d), k (B, kv_heads, Lk, d), v (B, kv_heads, Lk, dv).

    A causal kernel (top-left aligned, as torch's `is_causal`) is charged only for the pairs its mask keeps.
    """
    batch, heads, q_len, head_dim = query_shape
    k_len, v_dim = key_shape[-2], value_shape[-1]
    if not is_causal:
        pairs = q_len * k_len
    elif q_len <= k_len:
        pairs = q_len * (q_len + 1) // 2
    else:
        pairs = k_len * (k_len + 1) // 2 + (q_len - k_len) * k_len
    return 2 * batch * heads * pairs * (head_dim + v_dim)


def _flash_attention_flop(
    query_shape, key_shape, value_shape, dropout_p=0.0, is_causal=False, *args, out_shape=None, **kwargs
) -> int:
    # Both flash kernels take (query, key, value, dropout_p, is_causal, ...); the CPU one is what SDPA runs on CPU
    # and torch's counter has no formula for it (it would count no attention at all).
    return attention_flops(query_shape, key_shape, value_shape, bool(is_causal))


ATTENTION_FORMULAS = {
    aten._scaled_dot_product_flash_attention_for_cpu: _flash_attention_flop,
    aten._scaled_dot_product_flash_attention: _flash_attention_flop,
}


@dataclass(frozen=True)
class PartFlops:
    """Forward FLOPs of one prompt with one image per sequence, per part.

    `projector` is the query transformer for MQT-LLaVA and the MLP projector for LLaVA.
    """

    vision_tower: int
    projector: int
    prefill: int
    decode_step: int

    @property
    def total(self) -> int:
        """Everything one forward pass over the prompt costs: image encoding plus language-model prefill."""
        return self.vision_tower + self.projector + self.prefill

    def as_dict(self) -> dict[str, int]:
        return {**asdict(self), "total": self.total}


def count_flops(fn: Callable[[], Any]) -> tuple[Any, dict[str, int]]:
    """Runs `fn()` under a FLOP counter: returns its output and the FLOPs per module name (`"Global"`: all)."""
    with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=ATTENTION_FORMULAS) as counter:
        output = fn()
    return output, {name: sum(per_op.values()) for name, per_op in counter.get_flop_counts().items()}


def count_parts(
    model: nn.Module,
    *,
    image_size: int,
    prompt_tokens: int,
    num_visual_tokens: int,
    image_kwargs: dict[str, Any] | None = None,
    batch_size: int = 1,
) -> PartFlops:
    """Counts the parts of `model` (LLaVA layout: `model.model.vision_tower`, `.get_image_features`, `lm_head`).

    The sequence is `prompt_tokens` text tokens plus the `num_visual_tokens` the image becomes; `image_kwargs` go to
    `get_image_features` (e.g. `{"num_visual_tokens": m}` for MQT-LLaVA). Works on real and on fake tensors.
    """
    if prompt_tokens < 1:
        raise ValueError(f"prompt_tokens must be at least 1, got {prompt_tokens}")
    model.eval().requires_grad_(False)
    dtype = next(model.parameters()).dtype
    pixel_values = torch.zeros(batch_size, 3, image_size, image_size, dtype=dtype)
    _, image_counts = count_flops(lambda: model.model.get_image_features(pixel_values, **(image_kwargs or {})))
    vision = image_counts.get(type(model.model.vision_tower).__name__, 0)
    hidden_size = model.get_input_embeddings().embedding_dim
    embeds = torch.zeros(batch_size, prompt_tokens + num_visual_tokens, hidden_size, dtype=dtype)
    prefill_out, prefill_counts = count_flops(lambda: model(inputs_embeds=embeds, use_cache=True, logits_to_keep=1))
    next_token = torch.zeros(batch_size, 1, dtype=torch.long)
    cache = next_step_inputs(prefill_out)
    _, decode_counts = count_flops(lambda: model(input_ids=next_token, **cache, use_cache=True, logits_to_keep=1))
    return PartFlops(
        vision_tower=vision,
        projector=image_counts["Global"] - vision,
        prefill=prefill_counts["Global"],
        decode_step=decode_counts["Global"],
    )


def count_on_fake_tensors(build: Callable[[], nn.Module], count: Callable[[nn.Module], Any]) -> Any:
    """`count(build())` with every tensor fake: shapes and FLOPs without allocating a single weight.

    Weight initialisation is skipped (values are irrelevant to FLOPs, and some initialisers read data).
    """
    with FakeTensorMode():
        with no_init_weights():
            model = build()
        return count(model)
