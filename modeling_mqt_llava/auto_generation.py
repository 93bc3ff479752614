"""The escalation loop behind `generate(..., num_visual_tokens="auto")` (settings in `adaptive_budget.py`)."""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from transformers.cache_utils import Cache
from transformers.utils import ModelOutput

from .adaptive_budget import AutoBudgetSettings, answer_confidence

logger = logging.getLogger(__name__)

# generate() options whose output cannot be assembled from several attempts
_REFUSED_OPTIONS = ("streamer", "assistant_model", "output_scores", "output_logits", "output_attentions", "output_hidden_states")


@dataclass
class MqtLlavaAutoBudgetOutput(ModelOutput):
    """`generate(..., num_visual_tokens="auto", return_dict_in_generate=True)`.

    Attributes:
        sequences (B, L + T): the caller's input ids followed by each answer, right-padded with the pad token.
        num_visual_tokens (B,): the budget m that answered each prompt.
        confidence (B,): that answer's confidence under the call's confidence rule.
        attempts (B,): how many budgets of the schedule each prompt tried.
    """

    sequences: torch.LongTensor | None = None
    num_visual_tokens: torch.LongTensor | None = None
    confidence: torch.FloatTensor | None = None
    attempts: torch.LongTensor | None = None


def _token_ids(value: int | list[int] | None) -> list[int]:
    if value is None:
        return []
    return [value] if isinstance(value, int) else list(value)


def _check_options(generation_config: Any, kwargs: dict[str, Any]) -> None:
    for name in _REFUSED_OPTIONS:
        if kwargs.get(name) not in (None, False) or getattr(generation_config, name, None) not in (None, False):
            raise ValueError(
                f'num_visual_tokens="auto" does not support {name}: its answers come from several attempts. Pass an '
                "integer num_visual_tokens to use it"
            )
    for name in ("num_beams", "num_return_sequences"):
        value = kwargs.get(name, getattr(generation_config, name, None))
        if value not in (None, 1):
            raise ValueError(f'num_visual_tokens="auto" generates one answer per prompt; got {name}={value}')


class _PrefixCache:
    """KV cache of the columns before the first image of a batch layout, computed once and reused while the layout
    of those columns stays the same (it does across budgets when every prompt holds the same number of images)."""

    def __init__(self, language_model: Callable[..., ModelOutput]):
        self.language_model = language_model
        self.ids: torch.LongTensor | None = None
        self.mask: torch.Tensor | None = None
        self.name: str = "past_key_values"
        self.cache: Cache | None = None
        self.computations = 0

    def for_rows(self, ids: torch.LongTensor, mask: torch.Tensor, rows: torch.LongTensor) -> dict[str, Cache]:
        """ids, mask (B, P): the prefix columns of the whole batch; returns the cache keyword for `rows` (a copy)."""
        if ids.shape[1] == 0:
            return {}
        if self.ids is None or not (torch.equal(ids, self.ids) and torch.equal(mask, self.mask)):
            # positions as `generate` numbers a left-padded batch: counted over real tokens only
            positions = (mask.long().cumsum(-1) - 1).masked_fill(mask == 0, 0)
            output = self.language_model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True)
            self.name = next(key for key, value in output.items() if isinstance(value, Cache))
            self.ids, self.mask, self.cache = ids, mask, output[self.name]
            self.computations += 1
        cache = copy.deepcopy(self.cache)
        if len(rows) != ids.shape[0]:
            cache.reorder_cache(rows.to(ids.device))
        return {self.name: cache}


@torch.no_grad()
def generate_with_auto_budget(
    model: nn.Module,
    base_generate: Callable[..., Any],
    input_ids: torch.LongTensor,
    attention_mask: torch.Tensor | None,
    pixel_values: torch.FloatTensor | None,
    settings: AutoBudgetSettings,
    generation_config: Any,
    return_dict_in_generate: bool,
    **kwargs: Any,
) -> torch.LongTensor | MqtLlavaAutoBudgetOutput:
    """Answers each prompt at the first budget of `settings.schedule` whose answer is confident enough (the last
    budget answers whatever is left).

    input_ids, attention_mask (B, L) with one image-token run per image; pixel_values (n_images, 3, H, W). The vision
    tower encodes each image once; each escalation computes only the query-transformer tokens its larger budget
    adds (queries never attend to each other), so every token is computed once. Each attempt feeds the language
    model the first m visual tokens per image on the columns from the first image on, after the cached text before
    it. `base_generate` is `GenerationMixin.generate` bound to `model`; `generation_config` is the caller's (or None).
    Returns the sequences (B, L + T), or a `MqtLlavaAutoBudgetOutput` when `return_dict_in_generate`.
    """
    if pixel_values is None or input_ids is None:
        raise ValueError('num_visual_tokens="auto" needs input_ids and pixel_values: it chooses a budget per image')
    saved = generation_config if generation_config is not None else model.generation_config
    _check_options(saved, kwargs)
    config = model.config
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    is_image = input_ids == config.image_token_id
    starts = is_image.clone()
    starts[:, 1:] &= ~is_image[:, :-1]
    image_rows = starts.nonzero()[:, 0]  # (n_images,): the prompt each image belongs to, in image order
    if image_rows.numel() != pixel_values.shape[0]:
        raise ValueError(
            f"The input ids hold {image_rows.numel()} runs of image tokens but {pixel_values.shape[0]} images were given"
        )
    # the vision tower runs once; each escalation only adds the query-transformer tokens its larger budget needs
    features = model.model.get_vision_features(pixel_values.to(model.model.vision_tower.dtype))  # (n_images, N, D)
    visual: torch.Tensor | None = None  # (n_images, m_max, H) once the first tokens exist
    embed = model.get_input_embeddings()
    stop_ids = _token_ids(kwargs.get("eos_token_id", saved.eos_token_id))
    pad_id = kwargs.get("pad_token_id", saved.pad_token_id)
    pad_id = pad_id if pad_id is not None else (stop_ids[0] if stop_ids else 0)
    prefix = _PrefixCache(model.model.language_model)

    batch = input_ids.shape[0]
    answers: list[torch.LongTensor | None] = [None] * batch
    chosen = torch.zeros(batch, dtype=torch.long)
    confidence = torch.zeros(batch)
    attempts = torch.zeros(batch, dtype=torch.long)
    pending = torch.arange(batch)
    computed = 0  # tokens computed so far for every image of a pending prompt
    for step, m in enumerate(settings.schedule):
        images = torch.isin(image_rows, pending.to(image_rows.device))  # (n_images,): images of pending prompts
        new, _ = model.model.query_transformer(features[images], m, first_query=computed)  # (n, m - computed, H)
        if visual is None:
            visual = new.new_zeros((features.shape[0], settings.schedule[-1], new.shape[-1]))
        visual[images, computed:m] = new
        computed = m
        layout_ids, layout_mask = model.resize_image_runs(input_ids, attention_mask, m)  # (B, L_m): whole batch
        first_image = int((layout_ids == config.image_token_id).float().argmax(dim=1).min())
        rows = pending.to(layout_ids.device)
        ids, mask = layout_ids[rows], layout_mask[rows]
        tokens = visual[images, :m]  # (n_pending_images, m, H)
        embeds = embed(ids)
        image_mask = (ids == config.image_token_id).unsqueeze(-1)
        embeds = embeds.masked_scatter(image_mask, tokens.reshape(-1, tokens.shape[-1]).to(embeds.dtype))
        cache = prefix.for_rows(layout_ids[:, :first_image], layout_mask[:, :first_image], rows)
        outputs = base_generate(
            input_ids=ids,
            inputs_embeds=embeds,
            attention_mask=mask,
            return_dict_in_generate=True,
            output_scores=True,
            **cache,
            **({} if generation_config is None else {"generation_config": generation_config}),
            **kwargs,
        )
        new_tokens = outputs.sequences[:, ids.shape[1] :]
        log_probs = model.compute_transition_scores(outputs.sequences, outputs.scores, normalize_logits=True)
        scores = answer_confidence(log_probs, new_tokens, stop_ids, settings.confidence_rule).cpu()
        last = step == len(settings.schedule) - 1
        done = torch.ones_like(scores, dtype=torch.bool) if last else scores >= settings.threshold
        for index in done.nonzero()[:, 0].tolist():
            row = int(pending[index])
            answers[row], chosen[row], confidence[row] = new_tokens[index], m, scores[index]
        attempts[pending] += 1
        pending = pending[~done]
        if pending.numel() == 0:
            break
    logger.debug("auto budget: %s prompts answered at %s; prefix cache computed %d time(s)", batch, chosen.tolist(), prefix.computations)

    length = max(answer.shape[0] for answer in answers)
    sequences = torch.full((batch, input_ids.shape[1] + length), pad_id, dtype=input_ids.dtype, device=input_ids.device)
    sequences[:, : input_ids.shape[1]] = input_ids
    for row, answer in enumerate(answers):
        sequences[row, input_ids.shape[1] : input_ids.shape[1] + answer.shape[0]] = answer
    if not return_dict_in_generate:
        return sequences
    device = input_ids.device
    return MqtLlavaAutoBudgetOutput(
        sequences=sequences, num_visual_tokens=chosen.to(device), confidence=confidence.to(device), attempts=attempts.to(device)
    )


__all__ = ["MqtLlavaAutoBudgetOutput", "generate_with_auto_budget"]
