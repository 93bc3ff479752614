"""Tensor names of a saved MQT-LLaVA folder -> the names of the vLLM model (`serving.model.MqtLlavaForVllm`).

A folder written by `save_pretrained` holds `model.vision_tower.*` (transformers' vision model without its
`vision_model` level), `model.query_transformer.*`, `model.language_model.*` (the base decoder) and `lm_head.*`.
vLLM's CLIP and SigLIP towers keep the `vision_model` level, and its causal language models hold the base decoder
under `model` beside their own `lm_head`. Safetensors are read as saved: no conversion step.
"""

from __future__ import annotations

CHECKPOINT_TO_VLLM_PREFIXES: dict[str, str] = {
    "model.vision_tower.": "vision_tower.vision_model.",
    "model.query_transformer.": "query_transformer.",
    "model.language_model.": "language_model.model.",
    "lm_head.": "language_model.lm_head.",
}


def vllm_name(checkpoint_name: str) -> str:
    """The vLLM model's name for a saved tensor; a name outside the known prefixes is a `ValueError` naming it."""
    for old, new in CHECKPOINT_TO_VLLM_PREFIXES.items():
        if checkpoint_name.startswith(old):
            return new + checkpoint_name[len(old) :]
    raise ValueError(
        f"tensor {checkpoint_name!r} is not part of an MQT-LLaVA checkpoint (expected one of the prefixes "
        f"{sorted(CHECKPOINT_TO_VLLM_PREFIXES)})"
    )


__all__ = ["CHECKPOINT_TO_VLLM_PREFIXES", "vllm_name"]
