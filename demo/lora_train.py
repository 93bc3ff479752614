"""Trains the LoRA (or QLoRA) adapter of `mqt-llava demo --lora` through the shipped recipe, timed and measured.

The run is `mqt-llava train lora|qlora` with demo-sized overrides (rank, steps, batch, learning rate, CPU settings),
called in-process through `training.arguments.parse_recipe` + `training.sft.train`, exactly the path of the command.
Everything else comes from the recipe: LoRA on the language model's attention and MLP projections, the paper's draw
of m (uniform over even m), and for `qlora` a 4-bit NF4 language model. Two settings differ from the recipe, both
to keep the base's small budgets: m is drawn per image, so every step trains a spread of budgets, and the query
transformer stays frozen (the recipe trains it in full through `modules_to_save`, which made the old domain lose
up to 12.6 points at m = 4; docs/lora.md has the measurements).
"""

from __future__ import annotations

import logging
import resource
import time
from dataclasses import dataclass
from pathlib import Path

from trl import SFTTrainer

from mqt_llava.training.arguments import parse_recipe
from mqt_llava.training.sft import train

from .cli import peak_memory_mb
from .new_domain import DomainData
from .stages import CPU_OVERRIDES

logger = logging.getLogger(__name__)

RECIPES = ("lora", "qlora")


@dataclass(frozen=True)
class LoraSettings:
    """The adapter's training budget (scaled down from the paper-scale recipe to the tiny demo model).

    Attributes:
        recipe: `lora` or `qlora` (training/recipes/*.yaml).
        max_steps / batch_size / learning_rate: the optimisation budget (the tiny model needs a larger rate than the
            recipe's 2e-4 for 7B).
        lora_r / lora_alpha: adapter rank and scale (alpha = 2r, as the recipe advises for small domains).
        lora_dropout: dropout on the adapters' inputs, the recipe's 0.05. On CPU its masks take about a quarter of
            the forward pass; without it the run is 15% faster but kept less of the old domain (docs/lora.md).
        distribution / draw_per: the draw of m (`training.sampling` spec) and whether each batch or each image draws.
        train_query_transformer: keep the recipe's `lora_modules_to_save: [query_transformer]` (trained in full and
            saved with the adapter); False leaves the query transformer frozen, so only the LoRA layers learn.
        num_train_scenes: new-domain training scenes; replay_fraction: old-domain scenes added per new one.
        seed: seed of the data and of training.
    """

    recipe: str = "lora"
    max_steps: int = 600
    batch_size: int = 16
    learning_rate: float = 2e-3
    lora_r: int = 64
    lora_alpha: int = 128
    lora_dropout: float = 0.05
    distribution: str = "paper"
    draw_per: str = "image"
    train_query_transformer: bool = False
    num_train_scenes: int = 3000
    replay_fraction: float = 0.33
    seed: int = 0

    def __post_init__(self) -> None:
        if self.recipe not in RECIPES:
            raise ValueError(f"recipe must be one of {RECIPES}, got {self.recipe!r}")
        for name in ("max_steps", "batch_size", "lora_r", "lora_alpha", "num_train_scenes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise ValueError(f"lora_dropout must be in [0, 1), got {self.lora_dropout}")


def lora_overrides(settings: LoraSettings, base_dir: Path, data: DomainData, output_dir: Path) -> list[str]:
    """The `--field value` overrides that turn the paper-scale recipe into the demo's CPU run."""
    return [
        "--model_name_or_path", str(base_dir),
        "--data_path", str(data.data_path),
        "--image_folder", str(data.image_folder),
        "--output_dir", str(output_dir),
        "--max_steps", str(settings.max_steps),
        "--per_device_train_batch_size", str(settings.batch_size),
        "--gradient_accumulation_steps", "1",
        "--learning_rate", str(settings.learning_rate),
        "--lora_r", str(settings.lora_r),
        "--lora_alpha", str(settings.lora_alpha),
        "--lora_dropout", str(settings.lora_dropout),
        "--num_visual_tokens_distribution", settings.distribution,
        "--num_visual_tokens_draw", settings.draw_per,
        "--logging_steps", str(max(1, settings.max_steps // 10)),
        "--seed", str(settings.seed),
        *CPU_OVERRIDES,
    ]  # fmt: skip


@dataclass
class LoraOutcome:
    """What `train_adapter` produced: the trainer (its model is the adapted model), wall and CPU time (user + system,
    all threads: on a loaded machine it shows what the run needs better than wall time), memory and logged losses."""

    trainer: SFTTrainer
    adapter_dir: Path
    seconds: float
    cpu_seconds: float
    peak_memory_mb: float
    losses: list[float]


def train_adapter(settings: LoraSettings, base_dir: Path, data: DomainData, output_dir: Path) -> LoraOutcome:
    """Trains and saves the adapter (PEFT files + processor) to `output_dir`. `seconds` is the wall time of the whole
    `mqt-llava train` call (loading, training, saving); `peak_memory_mb` the process's peak resident memory when it
    ends, so call this before loading anything else large."""
    overrides = lora_overrides(settings, base_dir, data, output_dir)
    logger.info("training %s on %s: %d steps", settings.recipe, data.data_path, settings.max_steps)
    started, cpu_started = time.perf_counter(), _cpu_seconds()
    matryoshka_args, training_args, model_args = parse_recipe(settings.recipe, overrides)
    if not settings.train_query_transformer:
        model_args.lora_modules_to_save = None
    trainer = train(matryoshka_args, training_args, model_args)
    seconds, cpu_seconds = time.perf_counter() - started, _cpu_seconds() - cpu_started
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    return LoraOutcome(trainer, output_dir, round(seconds, 1), round(cpu_seconds, 1), round(peak_memory_mb(), 1), losses)


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


__all__ = ["RECIPES", "LoraOutcome", "LoraSettings", "lora_overrides", "train_adapter"]
