"""Hub model cards for MQT-LLaVA folders, rendered from `model_card.md.jinja` with `huggingface_hub.ModelCard`.

`render_model_card` is generic: the converter, the demo's exported model and any `save` path call it with their own
title, description, base models, optional results table and optional training provenance.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

from huggingface_hub import ModelCard, ModelCardData

logger = logging.getLogger(__name__)

TEMPLATE_PATH = Path(__file__).with_name("model_card.md.jinja")
BASE_TAGS = ("mqt-llava", "matryoshka", "vision-language", "llava", "custom_code")


def default_usage(repo_id: str, budgets: Sequence[int], question: str = "What is in the image?") -> str:
    """Returns a runnable Python snippet that loads `repo_id` through the pipeline and answers at each budget."""
    return f"""from PIL import Image
from transformers import pipeline

pipe = pipeline("image-text-to-text", model="{repo_id}", trust_remote_code=True)
image = Image.open("photo.jpg")
messages = [
    {{"role": "user", "content": [{{"type": "image", "image": image}}, {{"type": "text", "text": "{question}"}}]}},
]
for m in {tuple(budgets)!r}:  # visual tokens per image
    generate_kwargs = {{"num_visual_tokens": m, "max_new_tokens": 32}}
    out = pipe(text=messages, generate_kwargs=generate_kwargs, return_full_text=False)
    print(m, out[0]["generated_text"])"""


def _format_cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(rows: Sequence[Mapping[str, object]]) -> tuple[list[str], list[list[str]]]:
    columns = list(rows[0])
    for index, row in enumerate(rows):
        if list(row) != columns:
            raise ValueError(f"results row {index} has columns {list(row)}, expected the first row's {columns}")
    return columns, [[_format_cell(row[column]) for column in columns] for row in rows]


def render_model_card(
    *,
    title: str,
    description: str,
    num_queries: int,
    repo_id: str = "ORG/NAME",
    base_models: Sequence[str] = (),
    tags: Sequence[str] = (),
    datasets: Sequence[str] = (),
    license: str = "apache-2.0",
    usage: str | None = None,
    usage_budgets: Sequence[int] | None = None,
    processor_num_visual_tokens: int | None = None,
    generation_num_visual_tokens: int | None = None,
    results: Sequence[Mapping[str, object]] | None = None,
    results_caption: str | None = None,
    training: Mapping[str, object] | None = None,
    sections: Sequence[tuple[str, str]] = (),
    extra_metadata: Mapping[str, object] | None = None,
) -> ModelCard:
    """Renders the model card of an MQT-LLaVA folder.

    Args:
        title / description: the card's heading and opening paragraph (Markdown).
        num_queries: M, the model's largest number of visual tokens per image.
        repo_id: Hub id (or local folder) used in the usage snippet.
        base_models: Hub ids the model derives from (`base_model` metadata).
        tags: extra tags, added to the MQT-LLaVA ones.
        usage: a Python snippet replacing the default pipeline example.
        usage_budgets: the m values the default snippet loops over (default: M, M/4, M/16, at least 1).
        processor_num_visual_tokens / generation_num_visual_tokens: the folder's saved defaults (docs/architecture.md §4).
        results: rows of a results table, all with the same keys in the same order (e.g. m, accuracy, FLOPs).
        training: provenance shown as a list (seed, command, wall time, machine...).
        sections: extra `(heading, markdown)` sections, such as conversion notes.
        extra_metadata: further YAML metadata keys (read back with `ModelCard.load(path).data`).

    Returns:
        The `huggingface_hub.ModelCard`; `card.save(folder / "README.md")` writes it.
    """
    if usage_budgets is None:
        usage_budgets = sorted({num_queries, max(1, num_queries // 4), max(1, num_queries // 16)}, reverse=True)
    columns, rows = _table(results) if results else ([], [])
    card_data = ModelCardData(
        license=license,
        library_name="transformers",
        pipeline_tag="image-text-to-text",
        base_model=list(base_models) or None,
        datasets=list(datasets) or None,
        tags=list(BASE_TAGS) + [tag for tag in tags if tag not in BASE_TAGS],
        **dict(extra_metadata or {}),
    )
    card = ModelCard.from_template(
        card_data,
        template_path=str(TEMPLATE_PATH),
        title=title,
        description=description.strip(),
        num_queries=num_queries,
        usage=(usage if usage is not None else default_usage(repo_id, usage_budgets)).strip(),
        processor_num_visual_tokens=processor_num_visual_tokens or num_queries,
        generation_num_visual_tokens=generation_num_visual_tokens,
        results_columns=columns,
        results_rows=rows,
        results_caption=results_caption,
        training=list((training or {}).items()),
        sections=[(heading, body.strip()) for heading, body in sections],
    )
    logger.debug("rendered model card %r (%d characters)", title, len(card.content))
    return card


__all__ = ["render_model_card", "default_usage", "TEMPLATE_PATH"]
