"""Hub model cards for PEFT adapters of MQT-LLaVA models, rendered from `adapter_card.md.jinja`.

The card's metadata names the base model (`base_model`, `base_model_relation: adapter`) and `library_name: peft`, so
the Hub lists the adapter under its base; the text names the domain it was trained on and shows how to load it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from huggingface_hub import ModelCard, ModelCardData

from . import BASE_TAGS, _table

TEMPLATE_PATH = Path(__file__).with_name("adapter_card.md.jinja")


def adapter_usage(base_model: str, repo_id: str, budgets: Sequence[int], question: str, quantized: bool) -> str:
    """A runnable snippet: the base with `trust_remote_code=True` (in 4-bit for QLoRA), the adapter through
    `PeftModel.from_pretrained`, one answer per budget m."""
    quantization = ""
    if quantized:
        quantization = (
            '\n    quantization_config=BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", '
            'llm_int8_skip_modules=["model.vision_tower", "model.query_transformer", "lm_head"]),'
        )
    return f"""from peft import PeftModel
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor{", BitsAndBytesConfig" if quantized else ""}

base = AutoModelForImageTextToText.from_pretrained(
    "{base_model}", trust_remote_code=True,{quantization}
)
model = PeftModel.from_pretrained(base, "{repo_id}").eval()
processor = AutoProcessor.from_pretrained("{repo_id}", trust_remote_code=True)
messages = [{{"role": "user", "content": [{{"type": "image"}}, {{"type": "text", "text": "{question}"}}]}}]
inputs = processor.apply_chat_template(
    messages, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt",
    processor_kwargs={{"images": [Image.open("scene.png")]}},
)
for m in {tuple(budgets)!r}:  # visual tokens per image
    out = model.generate(**inputs, num_visual_tokens=m, max_new_tokens=8)
    print(m, processor.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True))"""


def render_adapter_card(
    *,
    title: str,
    description: str,
    base_model: str,
    domain: str,
    num_queries: int,
    method: str = "LoRA",
    trains_query_transformer: bool = True,
    budget_draw: str = "per batch",
    repo_id: str = "ORG/NAME",
    usage: str,
    tags: Sequence[str] = (),
    license: str = "apache-2.0",
    results: Sequence[Mapping[str, object]] | None = None,
    results_caption: str | None = None,
    training: Mapping[str, object] | None = None,
    extra_metadata: Mapping[str, object] | None = None,
) -> ModelCard:
    """Renders the card of an adapter folder; `card.save(folder / "README.md")` writes it.

    Args:
        title / description: heading and opening paragraph (Markdown).
        base_model: the base model's Hub id or folder (`base_model` metadata and the usage text).
        domain: one sentence naming what the adapter was trained on.
        num_queries: M of the base model.
        method: "LoRA" or "QLoRA".
        trains_query_transformer: whether the adapter carries a fully trained query transformer (`modules_to_save`).
        budget_draw: how m was drawn in training, completing "a random number m of visual tokens ..." (e.g.
            "per batch", "per image, with p(m) ∝ m^-0.5").
        usage: a Python snippet (see `adapter_usage`).
        results / results_caption / training / extra_metadata: as in `render_model_card`.
    """
    columns, rows = _table(results) if results else ([], [])
    card_data = ModelCardData(
        license=license,
        library_name="peft",
        pipeline_tag="image-text-to-text",
        base_model=base_model,
        base_model_relation="adapter",
        tags=[*BASE_TAGS, method.lower(), *(tag for tag in tags if tag not in BASE_TAGS)],
        **dict(extra_metadata or {}),
    )
    return ModelCard.from_template(
        card_data,
        template_path=str(TEMPLATE_PATH),
        title=title,
        description=description.strip(),
        base_model=base_model,
        domain=domain,
        num_queries=num_queries,
        method=method,
        trains_query_transformer=trains_query_transformer,
        budget_draw=budget_draw,
        repo_id=repo_id,
        usage=usage.strip(),
        results_columns=columns,
        results_rows=rows,
        results_caption=results_caption,
        training=list((training or {}).items()),
    )


__all__ = ["adapter_usage", "render_adapter_card"]
