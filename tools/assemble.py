"""Builds a stage-1 starting model from a pretrained vision tower and a pretrained language model.

The query transformer is freshly initialised; the tokenizer gets `<image>` (and a pad token when it has none), and
the language model's embeddings grow to match, new rows set to the mean of the existing ones.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from transformers import AutoConfig, AutoImageProcessor, AutoModelForCausalLM, AutoTokenizer

from mqt_llava.modeling_mqt_llava.configuration_mqt_llava import MqtLlavaConfig
from mqt_llava.modeling_mqt_llava.modeling_mqt_llava import MqtLlavaForConditionalGeneration
from mqt_llava.processing.build import build_processor
from mqt_llava.processing.processing_mqt_llava import MqtLlavaProcessor

logger = logging.getLogger(__name__)


def _vision_config(vision_dir: str | Path):
    config = AutoConfig.from_pretrained(vision_dir)
    return getattr(config, "vision_config", config)  # a full CLIP / SigLIP folder holds a vision sub-config


def assemble_from_pretrained(
    vision_dir: str | Path,
    language_dir: str | Path,
    tokenizer_dir: str | Path | None = None,
    num_queries: int = 256,
    query_num_heads: int = 16,
    query_key_source: str = "position",
    vision_feature_layer: int = -2,
    seed: int = 0,
) -> tuple[MqtLlavaForConditionalGeneration, MqtLlavaProcessor]:
    """A model whose vision tower and language model carry the pretrained weights, with a fresh query transformer,
    and its processor (Vicuna v1 template, the vision folder's image mean/std)."""
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir or language_dir)
    if "<image>" not in tokenizer.get_vocab():
        tokenizer.add_special_tokens({"additional_special_tokens": ["<image>"]})
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.unk_token or tokenizer.eos_token
    language_model = AutoModelForCausalLM.from_pretrained(language_dir, dtype=torch.float32)
    old_vocab = language_model.get_input_embeddings().weight.shape[0]
    language_model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    with torch.no_grad():
        for matrix in {language_model.get_input_embeddings().weight, language_model.get_output_embeddings().weight}:
            matrix[old_vocab:] = matrix[:old_vocab].mean(dim=0)
    text_config = language_model.config
    text_config.pad_token_id = tokenizer.pad_token_id
    vision_config = _vision_config(vision_dir)
    config = MqtLlavaConfig(
        vision_config=vision_config,
        text_config=text_config,
        num_queries=num_queries,
        query_num_heads=query_num_heads,
        query_key_source=query_key_source,
        vision_feature_layer=vision_feature_layer,
        vision_feature_select_strategy="default" if vision_config.model_type.startswith("clip") else "full",
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        tie_word_embeddings=bool(getattr(text_config, "tie_word_embeddings", False)),
    )
    torch.manual_seed(seed)
    model = MqtLlavaForConditionalGeneration(config)
    vision = type(model.model.vision_tower).from_pretrained(vision_dir, dtype=torch.float32)
    model.model.vision_tower.load_state_dict(vision.state_dict())
    model.model.language_model.load_state_dict(language_model.base_model.state_dict())
    model.lm_head.load_state_dict(language_model.get_output_embeddings().state_dict())
    try:
        vision_processor = AutoImageProcessor.from_pretrained(vision_dir)
        mean, std = tuple(vision_processor.image_mean), tuple(vision_processor.image_std)
    except (OSError, ValueError):
        logger.warning("no image processor in %s: using CLIP's mean and std", vision_dir)
        mean = std = None
    stats = {"image_mean": mean, "image_std": std} if mean is not None else {}
    processor = build_processor(tokenizer, image_size=vision_config.image_size, num_queries=num_queries, **stats)
    return model.eval(), processor


__all__ = ["assemble_from_pretrained"]
