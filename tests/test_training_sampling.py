"""Tests of the Matryoshka token-budget distributions (training/sampling.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mqt_llava.training.sampling import parse_distribution


def _chi_square_p_value(counts: np.ndarray, probabilities: np.ndarray) -> float:
    """Survival function of the chi-square statistic (regularised upper incomplete gamma, df = bins - 1)."""
    expected = counts.sum() * probabilities
    statistic = float(((counts - expected) ** 2 / expected).sum())
    degrees = len(counts) - 1
    return float(
        torch.special.gammaincc(
            torch.tensor(degrees / 2.0, dtype=torch.float64), torch.tensor(statistic / 2.0, dtype=torch.float64)
        )
    )


@pytest.mark.parametrize(
    ("spec", "values", "weights"),
    [
        ("paper", list(range(2, 17, 2)), [1.0] * 8),
        ("uniform", list(range(1, 17)), [1.0] * 16),
        ("log_uniform", list(range(1, 17)), [1.0 / m for m in range(1, 17)]),
        ("power:0.5", list(range(1, 17)), [m**-0.5 for m in range(1, 17)]),
        ("power:0", list(range(1, 17)), [1.0] * 16),
        ("fixed:max", [16], [1.0]),
        ("fixed:4", [4], [1.0]),
        ("1, 4,max", [1, 4, 16], [1.0, 1.0, 1.0]),
        ("power:1:4..max", list(range(4, 17)), [1.0 / m for m in range(4, 17)]),
        ("power:0:3..3", [3], [1.0]),
        ("fixed:4+fixed:8", [4, 8], [0.5, 0.5]),
        ("3*fixed:4 + 1*2,4", [2, 4], [0.125, 0.875]),
        (
            "0.4*fixed:4+0.6*power:0.5:2..max",
            list(range(2, 17)),
            [0.4 * (m == 4) + 0.6 * m**-0.5 / sum(k**-0.5 for k in range(2, 17)) for m in range(2, 17)],
        ),
    ],
)
def test_distribution_support_and_probabilities(spec: str, values: list[int], weights: list[float]) -> None:
    """Feature: each configured distribution (paper / uniform / log_uniform / power over 1..M or a range / fixed /
    list / weighted mixture) has the documented law."""
    distribution = parse_distribution(spec, num_queries=16)
    assert list(distribution.values) == values
    np.testing.assert_allclose(distribution.probabilities, np.array(weights) / sum(weights))


@pytest.mark.parametrize("spec", ["paper", "uniform", "log_uniform", "power:0.5", "2,8,16", "0.4*fixed:4+0.6*power:0.5:2..max"])
def test_draws_follow_the_distribution(spec: str) -> None:
    """Feature: seeded draws of m follow the configured distribution (chi-square goodness of fit, fixed seed)."""
    distribution = parse_distribution(spec, num_queries=16)
    draws = np.array([distribution.draw(seed=1234, rank=0, draw_index=index) for index in range(4000)])
    assert set(draws.tolist()) <= set(distribution.values)
    counts = np.array([(draws == value).sum() for value in distribution.values])
    assert _chi_square_p_value(counts, np.array(distribution.probabilities)) > 1e-3


def test_draws_are_reproducible_and_differ_across_ranks() -> None:
    """Feature: the draw is a function of (seed, rank, draw index): reproducible, and each rank has its own stream."""
    distribution = parse_distribution("paper", num_queries=64)
    rank0 = [distribution.draw(seed=7, rank=0, draw_index=index) for index in range(50)]
    assert rank0 == [distribution.draw(seed=7, rank=0, draw_index=index) for index in range(50)]
    assert rank0 != [distribution.draw(seed=7, rank=1, draw_index=index) for index in range(50)]
    assert rank0 != [distribution.draw(seed=8, rank=0, draw_index=index) for index in range(50)]


@pytest.mark.parametrize(
    "spec",
    [
        "fixed:0", "fixed:17", "0,4", "gaussian", "fixed:1.5", "", "power:x", "power:-1",
        "power:0.5:4", "power:0.5:9..3", "power:0.5:0..max", "power:0.5:2..17",
        "0.5*fixed:4+", "x*fixed:4+paper", "0*fixed:4+paper", "2*3*fixed:4", "0.5*fixed:17+paper",
    ],
)  # fmt: skip
def test_bad_specs_name_the_valid_range(spec: str) -> None:
    """Feature: a bad distribution spec raises ValueError naming the spec or the valid range 1..M."""
    with pytest.raises(ValueError, match=r"1\.\.16|num_visual_tokens_distribution"):
        parse_distribution(spec, num_queries=16)
