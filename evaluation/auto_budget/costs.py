"""Forward FLOPs per question at a fixed budget and with the automatic budget (conventions of `cost.flop_counting`).

A question's prompt is `prefix` text tokens, the image's m visual tokens, then `suffix` text tokens. At a fixed m
the language model prefills all of it. With `num_visual_tokens="auto"` it prefills the prefix once (its KV cache is
reused) and, for every budget tried, the image run and the suffix on top of that cache; the vision tower runs once
and the query transformer computes each token once, up to the last budget tried.

With a cache, the suffix's attention is charged for every cached key (the kernel gets an explicit mask, not the
causal flag), which slightly overcounts the automatic budget's cost.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from transformers import PreTrainedModel, ProcessorMixin

from mqt_llava.evaluation.auto_budget.questions import QuestionItem
from mqt_llava.evaluation.cost.flop_counting import count_flops
from mqt_llava.evaluation.cost.kv_cache import next_step_inputs


@dataclass(frozen=True)
class PromptShape:
    """Text tokens before the image (`prefix`) and after it (`suffix`) in one question's prompt."""

    prefix: int
    suffix: int


def prompt_shapes(processor: ProcessorMixin, items: Sequence[QuestionItem]) -> list[PromptShape]:
    """The prompt shape of every question, as the model's chat template and processor build it."""
    image_token_id = processor.tokenizer.convert_tokens_to_ids(processor.image_token)
    shapes = []
    for item in items:
        ids = processor.apply_chat_template(
            [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": item.question}]}],
            add_generation_prompt=True,
            tokenize=True,
            return_dict=True,
            processor_kwargs={"images": [item.image], "num_visual_tokens": 1},
        )["input_ids"][0]
        prefix = list(ids).index(image_token_id)
        shapes.append(PromptShape(prefix=prefix, suffix=len(ids) - prefix - 1))
    return shapes


class CostCounter:
    """Counts (and remembers) the FLOPs of the parts of `model`; works on real and on fake tensors."""

    def __init__(self, model: PreTrainedModel):
        self.model = model.eval().requires_grad_(False)
        self.hidden_size = model.get_input_embeddings().embedding_dim
        self.dtype = next(model.parameters()).dtype
        self._memo: dict[tuple, int] = {}

    def _embeds(self, length: int) -> torch.Tensor:
        return torch.zeros(1, length, self.hidden_size, dtype=self.dtype)

    def _remember(self, key: tuple, call: Callable[[], object]) -> int:
        """FLOPs of `call()` (all modules), counted the first time `key` is asked for."""
        if key not in self._memo:
            self._memo[key] = count_flops(call)[1]["Global"]
        return self._memo[key]

    def image(self, m: int) -> int:
        """Vision tower + query transformer for one image at budget m."""
        size = self.model.config.vision_config.image_size
        pixels = torch.zeros(1, 3, size, size, dtype=self.dtype)
        return self._remember(("image", m), lambda: self.model.model.get_image_features(pixels, m))

    def prefill(self, shape: PromptShape, m: int) -> int:
        """Language-model prefill of the whole prompt at budget m (LM head on the last position)."""
        length = shape.prefix + m + shape.suffix
        embeds = self._embeds(length)
        return self._remember(("prefill", length), lambda: self.model(inputs_embeds=embeds, use_cache=True, logits_to_keep=1))

    def prefix(self, shape: PromptShape) -> int:
        """The language model over the prefix alone (what the automatic budget computes once)."""
        embeds = self._embeds(shape.prefix)
        return self._remember(("prefix", shape.prefix), lambda: self.model.model.language_model(inputs_embeds=embeds, use_cache=True))

    def continuation(self, shape: PromptShape, m: int) -> int:
        """The image run and the suffix at budget m on top of the prefix's cache (LM head on the last position)."""
        key = ("continuation", shape.prefix, shape.suffix, m)
        if key not in self._memo:
            with torch.no_grad():
                cached = self.model.model.language_model(inputs_embeds=self._embeds(shape.prefix), use_cache=True)
            rest = self._embeds(m + shape.suffix)
            self._remember(key, lambda: self.model(inputs_embeds=rest, **next_step_inputs(cached), use_cache=True, logits_to_keep=1))
        return self._memo[key]

    def fixed(self, shape: PromptShape, m: int) -> dict[str, int]:
        """`{"language_model": ..., "total": ...}` for one question answered at budget m."""
        language_model = self.prefill(shape, m)
        return {"language_model": language_model, "total": self.image(m) + language_model}

    def auto(self, shape: PromptShape, tried: Sequence[int]) -> dict[str, int]:
        """The same for one question answered automatically after trying the budgets `tried`: the vision tower once,
        the query transformer's tokens up to the last budget tried (each computed once), the prefix once and one
        continuation per budget tried."""
        if shape.prefix == 0:
            language_model = sum(self.prefill(shape, m) for m in tried)
        else:
            language_model = self.prefix(shape) + sum(self.continuation(shape, m) for m in tried)
        return {"language_model": language_model, "total": self.image(tried[-1]) + language_model}


__all__ = ["CostCounter", "PromptShape", "prompt_shapes"]
