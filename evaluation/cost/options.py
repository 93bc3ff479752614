"""Command-line helpers shared by `mqt-llava flops` and `mqt-llava bench`: token-budget lists and their defaults,
Markdown tables."""

from __future__ import annotations

import argparse

from mqt_llava.modeling_mqt_llava.configuration_mqt_llava import check_num_visual_tokens

__all__ = ["DEFAULT_PROMPT_TOKENS", "PAPER_BUDGETS", "budgets_for", "int_list", "markdown_table"]

# The token budgets of the paper's Figure 1 and tables.
PAPER_BUDGETS = (2, 4, 8, 16, 36, 64, 144, 256)

# Text tokens around the image: the Vicuna v1 system line, "USER: <image>\n", a question of about a dozen tokens and
# " ASSISTANT:" with the Llama tokenizer. This is the length under which the counts reproduce the paper's Figure 1.
DEFAULT_PROMPT_TOKENS = 54


def int_list(text: str) -> list[int]:
    """argparse type: "2,4,8" -> [2, 4, 8]; anything else is an argparse error naming the bad item."""
    values = []
    for item in text.split(","):
        try:
            values.append(int(item))
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {item.strip()!r} in {text!r}")
    return values


def budgets_for(num_queries: int, requested: list[int] | None) -> list[int]:
    """The budgets to measure: `requested` (each checked against 1..M), else the paper's budgets up to M, and M."""
    if requested is not None:
        return sorted({check_num_visual_tokens(m, num_queries) for m in requested})
    return sorted({m for m in PAPER_BUDGETS if m <= num_queries} | {num_queries})


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table as lines, followed by an empty line."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows] + [""]
