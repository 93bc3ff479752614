"""Answering question sets at a fixed budget (with each answer's confidence) or with `num_visual_tokens="auto"`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel, ProcessorMixin

from mqt_llava.evaluation.auto_budget.questions import QuestionItem
from mqt_llava.modeling_mqt_llava.adaptive_budget import answer_confidence


@dataclass(frozen=True)
class Answer:
    """One prediction: the text, the budget that produced it, its confidence, and how many budgets were tried."""

    text: str
    num_visual_tokens: int
    confidence: float
    attempts: int = 1


def prompt_inputs(processor: ProcessorMixin, items: Sequence[QuestionItem], device: torch.device | str) -> dict[str, Any]:
    """The batch of chat prompts (one image, one question each), left-padded, as tensors on `device`."""
    texts = [
        processor.apply_chat_template(
            [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": item.question}]}],
            add_generation_prompt=True,
        )
        for item in items
    ]
    processor.tokenizer.padding_side = "left"
    return processor(images=[item.image for item in items], text=texts, return_tensors="pt", padding=True).to(device)


def _stop_ids(model: PreTrainedModel) -> list[int]:
    eos = model.generation_config.eos_token_id
    return [] if eos is None else ([eos] if isinstance(eos, int) else list(eos))


@torch.no_grad()
def answer_fixed(
    model: PreTrainedModel,
    processor: ProcessorMixin,
    items: Sequence[QuestionItem],
    num_visual_tokens: int,
    rule: str,
    batch_size: int = 32,
    max_new_tokens: int = 8,
) -> list[Answer]:
    """Greedy answers at budget m = `num_visual_tokens`, each with its confidence under `rule`."""
    answers = []
    for start in tqdm(range(0, len(items), batch_size), desc=f"m={num_visual_tokens}", leave=False):
        inputs = prompt_inputs(processor, items[start : start + batch_size], model.device)
        outputs = model.generate(
            **inputs,
            num_visual_tokens=num_visual_tokens,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            return_dict_in_generate=True,
            output_scores=True,
        )
        new_tokens = outputs.sequences[:, inputs["input_ids"].shape[1] :]
        log_probs = model.compute_transition_scores(outputs.sequences, outputs.scores, normalize_logits=True)
        confidence = answer_confidence(log_probs, new_tokens, _stop_ids(model), rule).tolist()
        texts = processor.batch_decode(new_tokens, skip_special_tokens=True)
        answers += [Answer(text, num_visual_tokens, score) for text, score in zip(texts, confidence, strict=True)]
    return answers


@torch.no_grad()
def answer_auto(
    model: PreTrainedModel,
    processor: ProcessorMixin,
    items: Sequence[QuestionItem],
    settings: dict[str, Any],
    batch_size: int = 32,
    max_new_tokens: int = 8,
) -> list[Answer]:
    """Greedy answers with `num_visual_tokens="auto"` and the `auto_*` generate arguments in `settings`."""
    answers = []
    for start in tqdm(range(0, len(items), batch_size), desc="auto", leave=False):
        inputs = prompt_inputs(processor, items[start : start + batch_size], model.device)
        outputs = model.generate(
            **inputs,
            num_visual_tokens="auto",
            max_new_tokens=max_new_tokens,
            do_sample=False,
            return_dict_in_generate=True,
            **settings,
        )
        texts = processor.batch_decode(outputs.sequences[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
        rows = zip(texts, outputs.num_visual_tokens.tolist(), outputs.confidence.tolist(), outputs.attempts.tolist())
        answers += [Answer(text, m, score, tried) for text, m, score, tried in rows]
    return answers


__all__ = ["Answer", "answer_auto", "answer_fixed", "prompt_inputs"]
