"""Hub model cards of `mqt-llava demo --lora`: the adapter's (PEFT metadata naming its base) and the merged folder's,
both naming the new domain and carrying the before/after averages and the run's provenance."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mqt_llava.model_cards import render_model_card
from mqt_llava.model_cards.adapter_card import adapter_usage, render_adapter_card

from .new_domain import NEW_DOMAIN_DESCRIPTION, NEW_DOMAIN_NAME


def _card_rows(results: dict[str, Any]) -> list[dict[str, str]]:
    accuracy = results["accuracy"]
    return [
        {
            "m": str(m),
            "new domain before": f"{100 * accuracy['new']['before'][str(m)]['average']:.1f}",
            "new domain after": f"{100 * accuracy['new']['after'][str(m)]['average']:.1f}",
            "old domain before": f"{100 * accuracy['old']['before'][str(m)]['average']:.1f}",
            "old domain after": f"{100 * accuracy['old']['after'][str(m)]['average']:.1f}",
        }
        for m in results["m_values"]
    ]


def write_cards(results: dict[str, Any], base_name: str, adapter_dir: Path, merged_dir: Path) -> None:
    """The adapter's card (PEFT metadata naming the base) and the merged folder's card, both naming the domain."""
    method = "QLoRA" if results["recipe"] == "qlora" else "LoRA"
    caption = (
        f"Average accuracy (%) over the five question families at m visual tokens: new domain on its "
        f"`{results['splits']['new']['split']}` split, old domain on the base model's card split."
    )
    training = {
        "command": results["command"],
        "recipe": f"training/recipes/{results['recipe']}.yaml, {results['settings']['max_steps']} steps of "
        f"{results['settings']['batch_size']}, m drawn per {results['settings']['draw_per']} from "
        f"`{results['settings']['distribution']}`",
        "wall time": f"{results['training']['seconds'] / 60:.1f} minutes (training only)",
        "peak memory": f"{results['training']['peak_memory_mb']:.0f} MiB",
        "machine": results["training"]["machine"],
    }
    usage = adapter_usage(base_name, "ORG/NAME", [results["num_queries"], 16, 4], "What color is the background?",
                          quantized=method == "QLoRA")  # fmt: skip
    render_adapter_card(
        title=f"{Path(base_name).name}: {method} adapter for {NEW_DOMAIN_NAME}",
        description=f"A {method} adapter that teaches `{base_name}` a new domain. It was trained by "
        f"`mqt-llava demo --lora{' --qlora' if method == 'QLoRA' else ''}` on CPU.",
        base_model=base_name,
        domain=NEW_DOMAIN_DESCRIPTION + ".",
        num_queries=results["num_queries"],
        method=method,
        trains_query_transformer=results["settings"]["train_query_transformer"],
        budget_draw=f"per {results['settings']['draw_per']}, drawn from `{results['settings']['distribution']}`",
        usage=usage,
        tags=["shapes-vqa", "tiny", "demo"],
        results=_card_rows(results),
        results_caption=caption,
        training=training,
    ).save(adapter_dir / "README.md")
    render_model_card(
        title=f"{Path(base_name).name} + {method} adapter for {NEW_DOMAIN_NAME} (merged)",
        description=f"`{base_name}` with its {method} adapter for a new domain merged in ({NEW_DOMAIN_DESCRIPTION}). "
        "A self-contained folder: it loads without PEFT.",
        num_queries=results["num_queries"],
        base_models=[base_name],
        tags=["shapes-vqa", "tiny", "demo", method.lower()],
        usage_budgets=[results["num_queries"], 16, 4, 1],
        results=_card_rows(results),
        results_caption=caption,
        training=training,
    ).save(merged_dir / "README.md")


__all__ = ["write_cards"]
