"""The LLaVA peer of an MQT-LLaVA model: transformers' `LlavaForConditionalGeneration` on the same vision tower and
language model, with LLaVA-1.5's two-layer MLP projector and one visual token per vision-grid feature.

With the `mqt-llava-7b` preset this is the LLaVA-1.5-7B shape (CLIP-L/336, 576 tokens, Vicuna-7B). A smaller
`image_size` gives the peer a smaller grid, e.g. 16 x 16 = 256 tokens, to compare at an equal number of visual tokens.
"""

from __future__ import annotations

import torch
from transformers import AutoModel, LlavaConfig, LlavaForConditionalGeneration
from transformers.models.llava.modeling_llava import LlavaMultiModalProjector

from mqt_llava.modeling_mqt_llava import MqtLlavaConfig, MqtLlavaForConditionalGeneration

__all__ = ["build_llava_peer", "grid_features", "llava_peer_config", "peer_image_size"]

# Vision towers whose output starts with a CLS token before the grid features.
_TOWERS_WITH_CLS = {"clip_vision_model"}


def grid_features(config: MqtLlavaConfig, image_size: int | None = None) -> int:
    """Number of features the vision tower hands to the projector at `image_size` (default: the tower's own)."""
    vision = config.vision_config
    side = (image_size or vision.image_size) // vision.patch_size
    has_cls = vision.model_type in _TOWERS_WITH_CLS
    return side * side + int(has_cls) - int(has_cls and config.vision_feature_select_strategy == "default")


def peer_image_size(config: MqtLlavaConfig, num_visual_tokens: int) -> int:
    """The image size at which the peer's tower gives exactly `num_visual_tokens` grid features (a square number)."""
    side = round(num_visual_tokens**0.5)
    if side * side != num_visual_tokens:
        raise ValueError(f"A square vision grid cannot give {num_visual_tokens} tokens (not a square number).")
    image_size = side * config.vision_config.patch_size
    if grid_features(config, image_size) != num_visual_tokens:
        raise ValueError(
            f"The vision tower ({config.vision_config.model_type}, select strategy "
            f"{config.vision_feature_select_strategy!r}) cannot give exactly {num_visual_tokens} tokens."
        )
    return image_size


def llava_peer_config(config: MqtLlavaConfig, image_size: int | None = None) -> LlavaConfig:
    """The `LlavaConfig` of the peer of `config`, its vision tower at `image_size` (default: unchanged)."""
    vision = config.vision_config.to_dict()
    if image_size is not None:
        vision["image_size"] = image_size
    return LlavaConfig(
        vision_config=vision,
        text_config=config.text_config.to_dict(),
        image_token_index=config.image_token_id,
        image_seq_length=grid_features(config, image_size),
        vision_feature_layer=config.vision_feature_layer,
        vision_feature_select_strategy=config.vision_feature_select_strategy,
        projector_hidden_act="gelu",
        multimodal_projector_bias=True,
        tie_word_embeddings=config.tie_word_embeddings,
    )


def build_llava_peer(
    model: MqtLlavaForConditionalGeneration, image_size: int | None = None
) -> LlavaForConditionalGeneration:
    """The peer of `model`, sharing its language model and LM head (same modules, no copy).

    At the tower's own image size the vision tower is shared too; at another size the peer gets a tower of the same
    architecture with its own (random) weights and position table. The MLP projector is randomly initialised.
    """
    config = llava_peer_config(model.config, image_size)
    with torch.device("meta"):
        peer = LlavaForConditionalGeneration(config)
    peer.model.language_model = model.model.language_model
    peer.lm_head = model.lm_head
    if image_size is None or image_size == model.config.vision_config.image_size:
        peer.model.vision_tower = model.model.vision_tower
    else:
        peer.model.vision_tower = AutoModel.from_config(config.vision_config)
    peer.model.multi_modal_projector = LlavaMultiModalProjector(config)
    dtype = next(model.parameters()).dtype
    peer = peer.to(dtype).eval()
    peer.generation_config.pad_token_id = model.generation_config.pad_token_id
    peer.generation_config.eos_token_id = model.generation_config.eos_token_id
    return peer
