"""`num_visual_tokens="auto"`: answer with the smallest budget of a schedule, and spend more only when unsure.

The visual tokens nest (the first m of the M tokens are the tokens for budget m), so the vision tower runs once per
image and an escalation only adds the query-transformer tokens of its larger budget; each attempt reruns the
language model on the part of the prompt from the first image on, reusing the KV cache of the text before it. A
prompt stops at the first budget whose answer the model is confident in (docs/adaptive_budget.md).

Settings, per `generate` call or saved in the generation config under the same names:

| name                        | meaning                                                              | default         |
|-----------------------------|----------------------------------------------------------------------|-----------------|
| `auto_budget_schedule`      | increasing budgets to try: ints, `"M"` or `"M/k"` (k an integer)     | `"M/4,M/2,M"` |
| `auto_confidence_rule`      | `"min_token_prob"` (least likely answer token) or `"answer_prob"` (the whole answer) | `"min_token_prob"` |
| `auto_confidence_threshold` | an answer with confidence >= threshold stops the escalation, in (0, 1] | 0.9            |
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

AUTO = "auto"
DEFAULT_SCHEDULE = "M/4,M/2,M"
CONFIDENCE_RULES = ("min_token_prob", "answer_prob")
DEFAULT_CONFIDENCE_RULE = "min_token_prob"
DEFAULT_THRESHOLD = 0.9


@dataclass(frozen=True)
class AutoBudgetSettings:
    """How `num_visual_tokens="auto"` escalates: the budgets it tries, in order, and when it stops."""

    schedule: tuple[int, ...]
    confidence_rule: str
    threshold: float


def _schedule_item(item: object, num_queries: int, spec: object) -> int:
    if isinstance(item, bool):
        raise ValueError(f"auto_budget_schedule {spec!r}: {item!r} is not a budget")
    if isinstance(item, int):
        value = item
    elif isinstance(item, str):
        text = item.strip().replace(" ", "")
        try:
            if text == "M":
                value = num_queries
            elif text.startswith("M/"):
                value = max(1, num_queries // int(text[2:]))
            else:
                value = int(text)
        except (ValueError, ZeroDivisionError):
            raise ValueError(
                f"auto_budget_schedule {spec!r}: {item!r} is not a budget; use integers, 'M' or 'M/k' "
                f"(for example {DEFAULT_SCHEDULE!r})"
            ) from None
    else:
        raise ValueError(f"auto_budget_schedule {spec!r}: {item!r} is not a budget")
    if not 1 <= value <= num_queries:
        raise ValueError(
            f"auto_budget_schedule {spec!r}: budget {item!r} is outside 1..{num_queries} (the model's number of queries)"
        )
    return value


def parse_schedule(spec: str | Sequence[int | str] | None, num_queries: int) -> tuple[int, ...]:
    """The budgets of `spec` for a model with M = `num_queries`: `"M/4,M/2,M"`, `"16,32,64"` or `[16, 32, 64]`.

    Repeated budgets (`M/4` and `M/2` are both 1 when M < 4) are kept once; the result must be increasing and
    hold at least two budgets, else there is nothing to escalate to.
    """
    if num_queries < 2:
        raise ValueError(
            f'num_visual_tokens="auto" needs at least two budgets to choose from, but the model has M = {num_queries} '
            "query; pass an integer num_visual_tokens instead"
        )
    spec = DEFAULT_SCHEDULE if spec is None else spec
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    if not items or (isinstance(spec, str) and not spec.strip()):
        raise ValueError(f"auto_budget_schedule {spec!r} is empty")
    values = [_schedule_item(item, num_queries, spec) for item in items]
    schedule = tuple(dict.fromkeys(values))
    if list(schedule) != sorted(schedule):
        raise ValueError(f"auto_budget_schedule {spec!r} must list budgets in increasing order, got {values}")
    if len(schedule) < 2:
        raise ValueError(f"auto_budget_schedule {spec!r} gives a single budget {schedule}; it needs at least two")
    return schedule


def check_confidence_rule(rule: object) -> str:
    """Returns `rule` if it names a confidence rule, else raises a `ValueError` listing them."""
    if rule not in CONFIDENCE_RULES:
        raise ValueError(f"auto_confidence_rule must be one of {CONFIDENCE_RULES}, got {rule!r}")
    return rule


def check_threshold(threshold: object) -> float:
    """Returns `threshold` as a float if it is a number in (0, 1], else raises a `ValueError`."""
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0.0 < threshold <= 1.0:
        raise ValueError(f"auto_confidence_threshold must be a number in (0, 1], got {threshold!r}")
    return float(threshold)


def resolve_settings(
    num_queries: int,
    generation_config: object,
    schedule: str | Sequence[int | str] | None = None,
    confidence_rule: str | None = None,
    threshold: float | None = None,
) -> AutoBudgetSettings:
    """The escalation settings of one call: the call's arguments, else the generation config's, else the defaults."""

    def pick(value: object, name: str, default: object) -> object:
        if value is not None:
            return value
        saved = getattr(generation_config, name, None)
        return default if saved is None else saved

    return AutoBudgetSettings(
        schedule=parse_schedule(pick(schedule, "auto_budget_schedule", DEFAULT_SCHEDULE), num_queries),
        confidence_rule=check_confidence_rule(pick(confidence_rule, "auto_confidence_rule", DEFAULT_CONFIDENCE_RULE)),
        threshold=check_threshold(pick(threshold, "auto_confidence_threshold", DEFAULT_THRESHOLD)),
    )


def answer_confidence(
    token_log_probs: torch.FloatTensor, new_tokens: torch.LongTensor, stop_ids: Sequence[int], rule: str
) -> torch.FloatTensor:
    """Confidence of each answer, in [0, 1].

    token_log_probs (B, T): log-probability the decoding distribution gave each generated token; new_tokens (B, T):
    those tokens. An answer ends at its first token in `stop_ids` (counted) or at T; what follows is padding and not
    counted. `min_token_prob` is the probability of the least likely answer token, `answer_prob` that of the answer.
    Returns (B,).
    """
    is_stop = torch.isin(new_tokens, torch.tensor(list(stop_ids), device=new_tokens.device))
    after_stop = (is_stop.long().cumsum(dim=1) - is_stop.long()) > 0  # (B, T): strictly after the first stop token
    log_probs = token_log_probs.float().masked_fill(after_stop, 0.0)
    if rule == "min_token_prob":
        return log_probs.min(dim=1).values.exp()
    return log_probs.sum(dim=1).exp()


__all__ = [
    "AUTO",
    "AutoBudgetSettings",
    "CONFIDENCE_RULES",
    "DEFAULT_CONFIDENCE_RULE",
    "DEFAULT_SCHEDULE",
    "DEFAULT_THRESHOLD",
    "answer_confidence",
    "check_confidence_rule",
    "check_threshold",
    "parse_schedule",
    "resolve_settings",
]
