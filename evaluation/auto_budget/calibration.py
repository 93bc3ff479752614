"""Simulating the automatic budget over confidence thresholds and choosing one for a target.

With the answers and confidences of every question at every budget of the schedule (fixed-budget runs), the
automatic budget at threshold t answers each question at the first budget whose confidence is >= t (the last budget
otherwise): the same answers a real `num_visual_tokens="auto"` run gives, without running it once per threshold.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from mqt_llava.evaluation.auto_budget.answering import Answer
from mqt_llava.evaluation.auto_budget.costs import CostCounter, PromptShape
from mqt_llava.evaluation.auto_budget.questions import QuestionItem


@dataclass(frozen=True)
class OperatingPoint:
    """Accuracy and mean cost of one way of answering a question set (a fixed m, or auto at a threshold).

    `accuracy` is the average over question families, each family weighing the same (the demo's "average").
    """

    label: str
    threshold: float | None
    accuracy: float
    language_model_flops: float
    total_flops: float
    accuracy_by_family: dict[str, float]
    answered_at: dict[str, dict[int, float]]  # family -> budget -> share of that family's questions


def operating_point(
    label: str,
    items: Sequence[QuestionItem],
    answers: Sequence[Answer],
    costs: Sequence[dict[str, int]],
    threshold: float | None = None,
) -> OperatingPoint:
    """Summarises answers (one per item, in order) and their costs (`CostCounter.fixed` / `.auto` per item)."""
    right: dict[str, list[bool]] = defaultdict(list)
    budgets: dict[str, Counter] = defaultdict(Counter)
    for item, answer in zip(items, answers, strict=True):
        right[item.family].append(item.is_correct(answer.text))
        budgets[item.family][answer.num_visual_tokens] += 1
    by_family = {family: sum(values) / len(values) for family, values in sorted(right.items())}
    return OperatingPoint(
        label=label,
        threshold=threshold,
        accuracy=sum(by_family.values()) / len(by_family),
        language_model_flops=sum(cost["language_model"] for cost in costs) / len(costs),
        total_flops=sum(cost["total"] for cost in costs) / len(costs),
        accuracy_by_family=by_family,
        answered_at={
            family: {m: count / sum(counter.values()) for m, count in sorted(counter.items())}
            for family, counter in sorted(budgets.items())
        },
    )


def simulate(per_budget: Sequence[Sequence[Answer]], threshold: float) -> list[Answer]:
    """per_budget[s][i]: question i's answer at schedule step s. Returns each question's automatic answer."""
    steps = len(per_budget)
    chosen = []
    for i in range(len(per_budget[0])):
        step = next((s for s in range(steps - 1) if per_budget[s][i].confidence >= threshold), steps - 1)
        answer = per_budget[step][i]
        chosen.append(Answer(answer.text, answer.num_visual_tokens, answer.confidence, attempts=step + 1))
    return chosen


def candidate_thresholds(per_budget: Sequence[Sequence[Answer]], limit: int = 200) -> list[float]:
    """Thresholds worth trying: the distinct confidences of the non-final steps (thinned to `limit`), and 1.0."""
    values = sorted({answer.confidence for answers in per_budget[:-1] for answer in answers if answer.confidence > 0})
    if len(values) > limit:
        values = [values[round(i * (len(values) - 1) / (limit - 1))] for i in range(limit)]
    return [*values, 1.0] if not values or values[-1] < 1.0 else values


def auto_costs(
    counter: CostCounter, shapes: Sequence[PromptShape], answers: Sequence[Answer], schedule: Sequence[int]
) -> list[dict[str, int]]:
    """The cost of each automatic answer: the budgets it tried are the first `attempts` of the schedule."""
    return [counter.auto(shape, schedule[: answer.attempts]) for shape, answer in zip(shapes, answers)]


def sweep_thresholds(
    items: Sequence[QuestionItem],
    per_budget: Sequence[Sequence[Answer]],
    counter: CostCounter,
    shapes: Sequence[PromptShape],
    schedule: Sequence[int],
) -> list[OperatingPoint]:
    """The simulated operating point of every candidate threshold."""
    points = []
    for threshold in candidate_thresholds(per_budget):
        answers = simulate(per_budget, threshold)
        costs = auto_costs(counter, shapes, answers, schedule)
        points.append(operating_point(f"auto@{threshold:.4g}", items, answers, costs, threshold))
    return points


def choose_threshold(
    points: Sequence[OperatingPoint],
    full: OperatingPoint,
    target_accuracy: float | None = None,
    max_accuracy_drop: float | None = None,
    target_cost: float | None = None,
) -> OperatingPoint:
    """The cheapest point whose accuracy reaches the target (a fraction, or `full`'s accuracy minus a drop in
    points), or the most accurate point whose mean language-model FLOPs stay within `target_cost` x `full`'s.

    Raises `ValueError` when no threshold meets the target, naming the best that was reached.
    """
    if sum(value is not None for value in (target_accuracy, max_accuracy_drop, target_cost)) != 1:
        raise ValueError("give exactly one of target_accuracy, max_accuracy_drop and target_cost")
    if target_cost is not None:
        budget = target_cost * full.language_model_flops
        within = [point for point in points if point.language_model_flops <= budget]
        if not within:
            cheapest = min(point.language_model_flops for point in points) / full.language_model_flops
            raise ValueError(f"no threshold keeps the cost within {target_cost:.2f} x the full budget's (cheapest: {cheapest:.3f} x)")
        return max(within, key=lambda point: (point.accuracy, -point.language_model_flops))
    goal = target_accuracy if target_accuracy is not None else full.accuracy - max_accuracy_drop / 100
    reaching = [point for point in points if point.accuracy >= goal - 1e-12]
    if not reaching:
        best = max(point.accuracy for point in points)
        raise ValueError(f"no threshold reaches accuracy {100 * goal:.1f}% (best: {100 * best:.1f}%)")
    return min(reaching, key=lambda point: (point.language_model_flops, -point.accuracy))


__all__ = [
    "OperatingPoint",
    "auto_costs",
    "candidate_thresholds",
    "choose_threshold",
    "operating_point",
    "simulate",
    "sweep_thresholds",
]
