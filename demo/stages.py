"""The demo's training stages 1 and 2, run through the project's TRL recipes (`training/recipes/*.yaml`).

Each stage is `mqt-llava train RECIPE.yaml` with demo-sized overrides, called in-process through
`training.arguments.parse_recipe` + `training.sft.train`. Differences from the paper's recipe, because the demo's
language model starts from random weights instead of Vicuna: stage 1 trains the language model too (it has to learn
to write captions), and learning rates suit a tiny model trained from scratch.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from mqt_llava.training.arguments import RECIPES_DIR, parse_recipe
from mqt_llava.training.sft import train

logger = logging.getLogger(__name__)

RECIPES = RECIPES_DIR
# What every demo run changes in a GPU recipe to train on a CPU: float32, no activation checkpointing, no worker
# processes, no checkpoints, no reporting, images already checked when exported.
CPU_OVERRIDES = [
    "--dtype", "float32",
    "--bf16", "false",
    "--activation_checkpointing", "false",
    "--dataloader_num_workers", "0",
    "--save_strategy", "no",
    "--use_cpu", "true",
    "--report_to", "none",
    "--verify_images", "false",
]  # fmt: skip


@dataclass(frozen=True)
class StageSettings:
    """One training stage.

    Attributes:
        recipe: recipe file name under `training/recipes/`.
        data_file: LLaVA-format file name inside the data folder.
        distribution: m per batch (`training.sampling` spec).
        draw_per / copies: one m per batch or per image, and how many budgets score each example per step.
        max_steps / batch_size / learning_rate: the optimisation budget.
        trainable_parts: parts that train (the vision tower never does).
    """

    recipe: str
    data_file: str
    distribution: str
    max_steps: int
    batch_size: int
    learning_rate: float
    trainable_parts: tuple[str, ...] = ("query_transformer", "language_model", "lm_head")
    warmup_ratio: float = 0.03
    draw_per: str = "batch"
    copies: int = 1


def stage_overrides(settings: StageSettings, model_dir: Path, data_dir: Path, output_dir: Path, seed: int) -> list[str]:
    """The `--field value` overrides that turn the paper-scale recipe into a demo-scale CPU run."""
    return [
        "--model_name_or_path", str(model_dir),
        "--data_path", str(data_dir / settings.data_file),
        "--image_folder", str(data_dir),
        "--num_visual_tokens_distribution", settings.distribution,
        "--num_visual_tokens_draw", settings.draw_per,
        "--num_visual_tokens_copies", str(settings.copies),
        "--trainable_parts", *settings.trainable_parts,
        "--output_dir", str(output_dir),
        "--max_steps", str(settings.max_steps),
        "--per_device_train_batch_size", str(settings.batch_size),
        "--gradient_accumulation_steps", "1",
        "--learning_rate", str(settings.learning_rate),
        "--warmup_steps", str(settings.warmup_ratio),
        "--max_grad_norm", "1.0",
        "--logging_steps", str(max(1, settings.max_steps // 20)),
        "--seed", str(seed),
        *CPU_OVERRIDES,
    ]  # fmt: skip


def run_stage(settings: StageSettings, model_dir: Path, data_dir: Path, output_dir: Path, seed: int) -> Path:
    """Trains `model_dir` for one stage and saves the result (model, processor, remote code) to `output_dir`."""
    overrides = stage_overrides(settings, model_dir, data_dir, output_dir, seed)
    logger.info("training %s: %d steps, m ~ %s", settings.recipe, settings.max_steps, settings.distribution)
    train(*parse_recipe(str(RECIPES / settings.recipe), overrides))
    return output_dir


__all__ = ["CPU_OVERRIDES", "RECIPES", "StageSettings", "run_stage", "stage_overrides"]
