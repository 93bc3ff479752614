"""Model sizes and inputs of `mqt-llava bench`: randomly initialised models (timing does not depend on the weights),
a locally trained word tokenizer, and one synthetic image per prompt.

- `tiny`: the CI size, runs in seconds.
- `small`: a 58M-parameter Llama (8 layers, width 512, embeddings and head included) and a 3.5M-parameter
  CLIP-style tower; minutes.
- `base`: a 271M-parameter Llama (16 layers, width 1024, Vicuna's 32000-token vocabulary) and a 26M-parameter
  CLIP-style tower at 336 px (24 x 24 grid, as CLIP-L/336), M = 256: big enough for the language model to dominate
  prefill, as it does at 7B.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from mqt_llava.modeling_mqt_llava import MqtLlavaConfig, MqtLlavaForConditionalGeneration
from mqt_llava.processing.build import build_processor
from mqt_llava.processing.processing_mqt_llava import MqtLlavaProcessor
from mqt_llava.processing.tokenizer import build_word_tokenizer
from mqt_llava.tools.testing import TINY_CORPUS, make_image

__all__ = [
    "BENCH_CONFIGS",
    "BenchCase",
    "bench_config",
    "build_bench_model",
    "prompt_with_text_tokens",
    "set_image_run_length",
    "text_only_ids",
]

_CLIP_336 = {"model_type": "clip_vision_model", "image_size": 336, "patch_size": 14, "hidden_act": "quick_gelu"}

BENCH_CONFIGS: dict[str, dict[str, Any]] = {
    "tiny": {
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
            "max_position_embeddings": 1024,
        },
        "num_queries": 16,
        "query_num_heads": 4,
    },
    "small": {
        "vision_config": {
            **_CLIP_336,
            "hidden_size": 256,
            "intermediate_size": 1024,
            "num_hidden_layers": 4,
            "num_attention_heads": 8,
        },
        "text_config": {
            "model_type": "llama",
            "hidden_size": 512,
            "intermediate_size": 1408,
            "num_hidden_layers": 8,
            "num_attention_heads": 8,
            "num_key_value_heads": 8,
            "max_position_embeddings": 2048,
            "vocab_size": 32000,
        },
        "num_queries": 256,
        "query_num_heads": 8,
    },
    "base": {
        "vision_config": {
            **_CLIP_336,
            "hidden_size": 512,
            "intermediate_size": 2048,
            "num_hidden_layers": 8,
            "num_attention_heads": 8,
        },
        "text_config": {
            "model_type": "llama",
            "hidden_size": 1024,
            "intermediate_size": 2816,
            "num_hidden_layers": 16,
            "num_attention_heads": 16,
            "num_key_value_heads": 16,
            "max_position_embeddings": 2048,
            "vocab_size": 32000,
        },
        "num_queries": 256,
        "query_num_heads": 8,
    },
}

# Words the benchmark tokenizer knows as single tokens, used to pad the question to the wanted prompt length.
_QUESTION_WORDS = "what is in the image ? describe the picture . how many shapes are there ?"


@dataclass
class BenchCase:
    """One measured setting: a model, its inputs, and the modules that start and end its image encoding."""

    name: str
    kind: str  # "mqt", "llava" or "text-only"
    num_visual_tokens: int
    model: nn.Module
    inputs: dict[str, torch.Tensor]
    image_path: tuple[nn.Module, nn.Module] | None


def bench_config(name: str, tokenizer: PreTrainedTokenizerBase) -> MqtLlavaConfig:
    """The `MqtLlavaConfig` of benchmark size `name`, with the tokenizer's special-token ids."""
    if name not in BENCH_CONFIGS:
        raise ValueError(f"Unknown benchmark config {name!r}; choose one of {sorted(BENCH_CONFIGS)}")
    spec = BENCH_CONFIGS[name]
    text = {
        "vocab_size": len(tokenizer),
        **spec["text_config"],
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    return MqtLlavaConfig(**{**spec, "text_config": text, "image_token_id": tokenizer.convert_tokens_to_ids("<image>")})


def build_bench_model(name: str, seed: int = 0) -> tuple[MqtLlavaForConditionalGeneration, MqtLlavaProcessor]:
    """A randomly initialised model of benchmark size `name` and its processor."""
    tokenizer = build_word_tokenizer(TINY_CORPUS)
    config = bench_config(name, tokenizer)
    torch.manual_seed(seed)
    model = MqtLlavaForConditionalGeneration(config).eval().requires_grad_(False)
    processor = build_processor(tokenizer, image_size=config.vision_config.image_size, num_queries=config.num_queries)
    return model, processor


def prompt_with_text_tokens(processor: MqtLlavaProcessor, text_tokens: int) -> str:
    """A Vicuna v1 prompt with one image whose text (everything but the image run) is exactly `text_tokens` tokens."""

    def render(num_words: int) -> str:
        words = _QUESTION_WORDS.split()
        question = " ".join(words[i % len(words)] for i in range(num_words))
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
        return processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def count(prompt: str) -> int:
        return len(processor(text=prompt, images=make_image(0, 8), num_visual_tokens=1)["input_ids"][0]) - 1

    shortest = count(render(0))
    if text_tokens < shortest:
        raise ValueError(f"prompt_tokens must be at least {shortest} (the chat template alone), got {text_tokens}")
    prompt = render(text_tokens - shortest)
    if count(prompt) != text_tokens:
        raise RuntimeError(f"the benchmark prompt has {count(prompt)} text tokens instead of {text_tokens}")
    return prompt


def set_image_run_length(input_ids: torch.LongTensor, image_token_id: int, length: int) -> torch.LongTensor:
    """input_ids (B, L) with one run of image tokens per row, rows equally long -> (B, L - run + length)."""
    rows = []
    for row in input_ids:
        positions = (row == image_token_id).nonzero().flatten()
        start, end = int(positions[0]), int(positions[-1]) + 1
        rows.append(torch.cat([row[:start], row.new_full((length,), image_token_id), row[end:]]))
    return torch.stack(rows)


def text_only_ids(input_ids: torch.LongTensor, image_token_id: int, filler_id: int) -> torch.LongTensor:
    """The same prompt with every image token replaced by a text token: same length, no image."""
    return input_ids.masked_fill(input_ids == image_token_id, filler_id)
