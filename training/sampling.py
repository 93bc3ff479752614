"""Distributions of the visual-token budget m drawn for each training batch (docs/architecture.md §4).

A distribution is written as a short spec string so that it fits in a recipe YAML and on the command line:

| spec              | values m                           | probability                              |
|-------------------|------------------------------------|------------------------------------------|
| `paper`           | 2, 4, ..., M (even numbers)        | uniform (the published stage-2 recipe)   |
| `uniform`         | 1, 2, ..., M                       | uniform                                  |
| `log_uniform`     | 1, 2, ..., M                       | proportional to 1/m (same mass per octave) |
| `power:A`         | 1, 2, ..., M                       | proportional to m**-A (A = 0: uniform, 1: log_uniform) |
| `power:A:LO..HI`  | LO, ..., HI (`HI` may be `max`)    | proportional to m**-A                    |
| `fixed:N`         | N (`fixed:max` means M)            | 1                                        |
| `16,64,256`       | the listed values (`max` allowed)  | uniform over the list                    |
| `0.4*fixed:4+0.6*power:0.5` | the union of the parts   | the weighted sum of the parts' laws (weights are normalised) |

Every draw comes from a NumPy generator seeded by `(seed, rank, draw_index)`, so the m of a given batch on a given
rank is a pure function of those three numbers: reproducible, independent across ranks, and restorable on resume.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from mqt_llava.modeling_mqt_llava.configuration_mqt_llava import check_num_visual_tokens

logger = logging.getLogger(__name__)

NAMED_DISTRIBUTIONS = ("paper", "uniform", "log_uniform")


@dataclass(frozen=True)
class TokenBudgetDistribution:
    """A discrete distribution over visual-token budgets m in 1..num_queries.

    Attributes:
        spec: the spec string it was parsed from.
        values: the possible m, increasing.
        probabilities: P(m) for each value, summing to 1.
    """

    spec: str
    values: tuple[int, ...]
    probabilities: tuple[float, ...]

    def draw(self, seed: int, rank: int, draw_index: int) -> int:
        """Returns the m of draw number `draw_index` on process `rank` for base `seed` (deterministic)."""
        if len(self.values) == 1:
            return self.values[0]
        generator = np.random.default_rng([seed, rank, draw_index])
        return int(generator.choice(self.values, p=self.probabilities))

    def draw_many(self, seed: int, rank: int, draw_index: int, count: int) -> list[int]:
        """Returns `count` independent m for draw number `draw_index` (one per image when each image draws its own)."""
        if len(self.values) == 1:
            return [self.values[0]] * count
        generator = np.random.default_rng([seed, rank, draw_index])
        return [int(value) for value in generator.choice(self.values, size=count, p=self.probabilities)]

    @property
    def mean(self) -> float:
        """Expected m, which sets the expected language-model cost per image."""
        return float(np.dot(self.values, self.probabilities))


def _parse_value(text: str, num_queries: int, spec: str) -> int:
    text = text.strip()
    if text == "max":
        return num_queries
    try:
        value = int(text)
    except ValueError:
        raise ValueError(
            f"num_visual_tokens_distribution {spec!r}: {text!r} is not an integer; expected one of "
            f"{NAMED_DISTRIBUTIONS}, 'power:A', 'fixed:N', 'fixed:max' or a comma-separated list such as '16,64,max'"
        ) from None
    return check_num_visual_tokens(value, num_queries, name=f"num_visual_tokens_distribution {spec!r} value")


def _parse_range(text: str, num_queries: int, spec: str) -> tuple[int, int]:
    low_text, separator, high_text = text.partition("..")
    if not separator:
        raise ValueError(f"num_visual_tokens_distribution {spec!r}: {text!r} is not a range LO..HI such as '2..max'")
    low, high = _parse_value(low_text, num_queries, spec), _parse_value(high_text, num_queries, spec)
    if low > high:
        raise ValueError(f"num_visual_tokens_distribution {spec!r}: the range {text!r} is empty (LO > HI)")
    return low, high


def _parse_mixture(spec: str, num_queries: int) -> TokenBudgetDistribution:
    """`W1*SPEC1+W2*SPEC2+...`: the parts' laws summed with weights W / sum(W); a part without `W*` has weight 1."""
    parts = []
    for part in spec.split("+"):
        weight_text, separator, part_spec = part.strip().rpartition("*")
        try:
            weight = float(weight_text) if separator else 1.0
        except ValueError:
            weight = 0.0
        if not weight > 0 or not part_spec.strip():
            raise ValueError(
                f"num_visual_tokens_distribution {spec!r}: each part of a mixture is SPEC or W*SPEC with a positive "
                f"number W, got {part.strip()!r}"
            )
        try:
            parts.append((weight, parse_distribution(part_spec, num_queries)))
        except ValueError as error:
            raise ValueError(f"num_visual_tokens_distribution {spec!r}, part {part.strip()!r}: {error}") from None
    total = sum(weight for weight, _ in parts)
    probabilities: dict[int, float] = {}
    for weight, component in parts:
        for value, probability in zip(component.values, component.probabilities):
            probabilities[value] = probabilities.get(value, 0.0) + weight / total * probability
    values = sorted(probabilities)
    return TokenBudgetDistribution(spec=spec, values=tuple(values), probabilities=tuple(probabilities[v] for v in values))


def parse_distribution(spec: str, num_queries: int) -> TokenBudgetDistribution:
    """Parses a spec string (see the module docstring) for a model with `num_queries` (M) queries.

    Raises `ValueError` naming the spec for unknown names and values outside 1..M.
    """
    if isinstance(num_queries, bool) or not isinstance(num_queries, int) or num_queries < 1:
        raise ValueError(f"num_queries must be a positive integer, got {num_queries!r}")
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"num_visual_tokens_distribution must be a non-empty string, got {spec!r}")
    spec = spec.strip()
    if "+" in spec or "*" in spec:
        return _parse_mixture(spec, num_queries)
    if spec == "paper":
        values = np.arange(2, num_queries + 1, 2)
        if values.size == 0:
            raise ValueError(f"the 'paper' distribution draws even m in 2..M and needs M >= 2, got M = {num_queries}")
        weights = np.ones(values.size)
    elif spec == "uniform":
        values = np.arange(1, num_queries + 1)
        weights = np.ones(values.size)
    elif spec == "log_uniform":
        values = np.arange(1, num_queries + 1)
        weights = 1.0 / values
    elif spec.startswith("power:"):
        exponent_text, _, range_text = spec[len("power:") :].partition(":")
        try:
            exponent = float(exponent_text)
        except ValueError:
            raise ValueError(f"num_visual_tokens_distribution {spec!r}: the exponent of 'power:A' must be a number") from None
        if not 0.0 <= exponent <= 4.0:
            raise ValueError(f"num_visual_tokens_distribution {spec!r}: the exponent of 'power:A' must be in 0..4")
        low, high = _parse_range(range_text, num_queries, spec) if range_text else (1, num_queries)
        values = np.arange(low, high + 1)
        weights = values.astype(np.float64) ** -exponent
    elif spec.startswith("fixed:"):
        values = np.array([_parse_value(spec[len("fixed:") :], num_queries, spec)])
        weights = np.ones(1)
    else:
        parsed = sorted({_parse_value(part, num_queries, spec) for part in spec.split(",")})
        values = np.array(parsed)
        weights = np.ones(values.size)
    probabilities = weights / weights.sum()
    return TokenBudgetDistribution(
        spec=spec,
        values=tuple(int(v) for v in values),
        probabilities=tuple(float(p) for p in probabilities),
    )


__all__ = ["NAMED_DISTRIBUTIONS", "TokenBudgetDistribution", "parse_distribution"]
