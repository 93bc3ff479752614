"""A LLaVA folder that vLLM's built-in LLaVA serves, built from an MQT-LLaVA folder: the same vision tower and
language model weights, LLaVA-1.5's MLP projector randomly initialised (it changes no cost), one visual token per
vision-grid feature (the full grid). Used as the peer of `mqt-llava bench --engine vllm`.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from transformers import LlavaProcessor

from mqt_llava.evaluation.cost.peer import build_llava_peer
from mqt_llava.modeling_mqt_llava import MqtLlavaForConditionalGeneration
from mqt_llava.processing.processing_mqt_llava import MqtLlavaProcessor

__all__ = ["write_llava_peer_folder"]

# transformers saves LLaVA's vision tower without its `vision_model` level (under `vision_tower.` or
# `model.vision_tower.`, depending on its version); vLLM's built-in LLaVA loads it with that level
_TOWER_PREFIXES = ("model.vision_tower.", "vision_tower.")


def _with_vision_model_level(name: str) -> str:
    for prefix in _TOWER_PREFIXES:
        if name.startswith(prefix) and not name.startswith(prefix + "vision_model."):
            return prefix + "vision_model." + name[len(prefix) :]
    return name


def write_llava_peer_folder(mqt_folder: Path, out: Path, seed: int = 0) -> Path:
    """Writes the LLaVA peer of the MQT-LLaVA folder `mqt_folder` to `out` (config, safetensors, LlavaProcessor with
    the same image processor, tokenizer and chat template) and returns `out`."""
    model = MqtLlavaForConditionalGeneration.from_pretrained(mqt_folder, dtype=torch.float32).eval()
    processor = MqtLlavaProcessor.from_pretrained(mqt_folder, trust_remote_code=True)
    torch.manual_seed(seed)
    peer = build_llava_peer(model)
    out.mkdir(parents=True, exist_ok=True)
    peer.save_pretrained(out)
    vision = model.config.vision_config
    LlavaProcessor(
        image_processor=processor.image_processor,
        tokenizer=processor.tokenizer,
        patch_size=vision.patch_size,
        vision_feature_select_strategy=model.config.vision_feature_select_strategy,
        chat_template=processor.chat_template,
        image_token=processor.image_token,
        num_additional_image_tokens=1 if vision.model_type == "clip_vision_model" else 0,
    ).save_pretrained(out)
    weights_path = out / "model.safetensors"
    tensors = load_file(weights_path)
    renamed = {_with_vision_model_level(name): tensor for name, tensor in tensors.items()}
    save_file(renamed, weights_path, metadata={"format": "pt"})
    return out
