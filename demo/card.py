"""The model card of the demo model: results table, provenance, and the accuracies the default demo checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from huggingface_hub import ModelCard

from mqt_llava.model_cards import render_model_card

RESULTS_KEY = "shapes_vqa_results"


def write_demo_card(model_dir: Path, results: dict[str, Any], training: dict[str, Any]) -> Path:
    """Renders README.md into `model_dir`, with the Matryoshka model's accuracy per m in the table and, under the
    metadata key `shapes_vqa_results`, the benchmark split and accuracies that `mqt-llava demo` reproduces."""
    families = results["families"]
    main = results["models"][0]
    rows = []
    for m in results["m_values"]:
        accuracy = main["accuracy"][str(m)]
        row: dict[str, object] = {"m": m}
        row.update({family: f"{100 * accuracy[family]:.1f}" for family in families})
        row["average"] = f"{100 * accuracy['average']:.1f}"
        row["MFLOPs"] = f"{results['flops'][str(m)] / 1e6:.2f}"
        rows.append(row)
    card = render_model_card(
        title="mqt-llava-tiny",
        description=(
            "A tiny MQT-LLaVA trained from scratch on Shapes-VQA, the project's synthetic visual QA benchmark, by "
            "`mqt-llava demo --train`. It exists to show the Matryoshka idea end to end on a CPU: one model answers "
            f"with any number of visual tokens from 1 to {results['num_queries']}. It knows nothing outside "
            "Shapes-VQA scenes (64 px images of coloured circles, squares and triangles)."
        ),
        num_queries=results["num_queries"],
        repo_id="evaluation/assets/mqt-llava-tiny",
        tags=["shapes-vqa", "tiny", "demo"],
        usage_budgets=[64, 16, 4, 1],
        results=rows,
        results_caption=(
            f"Shapes-VQA test split (seed {results['benchmark']['seed']}, {results['benchmark']['num_scenes']} scenes), "
            "accuracy in % per question family at m visual tokens; MFLOPs: forward cost of one question prompt."
        ),
        training=training,
        extra_metadata={RESULTS_KEY: {"benchmark": results["benchmark"], "accuracy": main["accuracy"]}},
    )
    path = model_dir / "README.md"
    card.save(path)
    return path


def recorded_results(model_dir: Path) -> dict[str, Any] | None:
    """The benchmark split and accuracies a demo folder's card records, or None if it records none."""
    path = model_dir / "README.md"
    if not path.is_file():
        return None
    return ModelCard.load(path).data.to_dict().get(RESULTS_KEY)


__all__ = ["RESULTS_KEY", "recorded_results", "write_demo_card"]
