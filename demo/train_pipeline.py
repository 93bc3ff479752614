"""`mqt-llava demo --train`: Shapes-VQA data -> vision pre-training -> stage 1 -> stage 2 -> a Hub folder.

Steps (all seeded):
1. export the Shapes-VQA training split as a LLaVA-format dataset (captions for stage 1; multi-turn VQA plus the
   same captions for stage 2, as LLaVA's stage-2 mix keeps caption-style data);
2. pre-train a CLIP-style vision tower on dense per-patch labels (`vision_pretrain`), then freeze it; fit the query
   transformer to the coarse-to-fine attention layout (`query_layout`), so the first tokens pool the whole image;
3. stage 1 through `training/recipes/stage1_align.yaml`: dense captions, m = M;
4. stage 2 through `training/recipes/stage2_instruct.yaml` with a Matryoshka draw of m for every image from the first
   step: with probability 0.4 m = M/16, otherwise p(m) proportional to m**-0.5 over 2..M. The point mass gives the
   smallest budget the demo is held to as many samples as it needs to match a model trained for it alone, and the
   spread keeps every other budget trained (budgets never drawn dip); one m per image (not per batch) makes every
   step train many budgets;
5. optionally, fixed-m baselines: stage 2 again from the same stage-1 model with m fixed, for the same number of
   steps (the same number of training samples).
Step counts are fixed (so a seed gives one model); `minutes` scales them from the default budget.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from mqt_llava.evaluation.shapes_vqa import (
    DEFAULT_SCENE_CONFIG,
    PATCH_COLORS,
    PATCH_SHAPES,
    SceneConfig,
    build_split,
    export_split,
    patch_labels,
)
from mqt_llava.tools.presets import preset_config

from .model_setup import DEMO_PRESET, build_demo_model, build_demo_processor
from .stages import StageSettings, run_stage
from .vision_pretrain import PatchLabelData, patch_accuracy, pretrain_vision_tower

logger = logging.getLogger(__name__)

DEFAULT_MINUTES = 30.0
# Training conversations ask several different questions of a family where a scene allows it: the language model,
# which starts from random weights, learns from every answer of a conversation at the cost of one image, so longer
# conversations teach more per step (docs/demo_history.md has the measurement). Evaluation splits keep one question
# per family.
QUESTIONS_PER_FAMILY = {"color": 3, "exists": 6, "count": 3, "position": 6}
STAGE1 = StageSettings("stage1_align.yaml", "train_captions.json", "fixed:max", 900, 16, 1e-3)
STAGE2 = StageSettings(
    "stage2_instruct.yaml", "train_mix.json", "0.4*fixed:4+0.6*power:0.5:2..max", 4500, 16, 1e-3, draw_per="image"
)


@dataclass(frozen=True)
class TrainSettings:
    """The whole `--train` budget at its default size (about `DEFAULT_MINUTES` on 2 CPU cores)."""

    seed: int = 0
    num_train_scenes: int = 10000
    questions_per_family: dict[str, int] = field(default_factory=lambda: dict(QUESTIONS_PER_FAMILY))
    vision_steps: int = 150
    vision_batch_size: int = 32
    vision_learning_rate: float = 2e-3
    stage1: StageSettings = STAGE1
    stage2: StageSettings = STAGE2

    def scaled(self, minutes: float) -> TrainSettings:
        """The same recipe with every step count scaled by minutes / DEFAULT_MINUTES (at least 1 step each)."""
        if minutes <= 0:
            raise ValueError(f"--minutes must be positive, got {minutes}")
        factor = minutes / DEFAULT_MINUTES

        def steps(n: int) -> int:
            return max(1, round(n * factor))

        return replace(
            self,
            vision_steps=steps(self.vision_steps),
            stage1=replace(self.stage1, max_steps=steps(self.stage1.max_steps)),
            stage2=replace(self.stage2, max_steps=steps(self.stage2.max_steps)),
        )


def _patch_label_data(records, image_processor) -> PatchLabelData:
    pixel_values = image_processor([record.image() for record in records], return_tensors="pt")["pixel_values"]
    labels = [patch_labels(record.scene) for record in records]
    return PatchLabelData(
        pixel_values,
        torch.from_numpy(np.stack([colors for colors, _ in labels])),
        torch.from_numpy(np.stack([shapes for _, shapes in labels])),
    )


def build_initial_model(settings: TrainSettings, scene_config: SceneConfig, out_dir: Path) -> dict[str, float]:
    """Writes the stage-1 starting folder: pre-trained frozen vision tower, coarse-to-fine query transformer,
    random language model, processor. Returns the tower's held-out patch accuracy."""
    processor = build_demo_processor(scene_config, num_queries=preset_config(DEMO_PRESET).num_queries)
    model = build_demo_model(processor, settings.seed, scene_config)
    train_records = build_split("train", settings.num_train_scenes, settings.seed, scene_config)
    held_out = build_split("vision-check", 200, settings.seed, scene_config)
    train_data = _patch_label_data(train_records, processor.image_processor)
    classifier = pretrain_vision_tower(
        model.config.vision_config,
        model.config.vision_feature_layer,
        train_data,
        num_colors=len(PATCH_COLORS),
        num_shapes=len(PATCH_SHAPES),
        steps=settings.vision_steps,
        batch_size=settings.vision_batch_size,
        learning_rate=settings.vision_learning_rate,
        seed=settings.seed,
    )
    accuracy = patch_accuracy(classifier, _patch_label_data(held_out, processor.image_processor))
    logger.info("vision tower patch accuracy on held-out scenes: %s", accuracy)
    model.model.vision_tower.load_state_dict(classifier.tower.state_dict())
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return accuracy


@dataclass
class TrainOutcome:
    """What `train_demo` produced: the final folder, fixed-m baseline folders by m, timings and vision accuracy."""

    model_dir: Path
    baseline_dirs: dict[int, Path]
    seconds: dict[str, float]
    vision_accuracy: dict[str, float]


def train_demo(
    work_dir: Path, settings: TrainSettings, scene_config: SceneConfig = DEFAULT_SCENE_CONFIG, baselines: tuple[int, ...] = ()
) -> TrainOutcome:
    """Runs steps 1-5 of the module docstring under `work_dir`; returns where the models are."""
    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[name] = round(now - clock, 1)
        clock = now

    data_dir = work_dir / "data"
    export_split(data_dir, "train", settings.num_train_scenes, settings.seed, scene_config, settings.questions_per_family)
    lap("data")
    init_dir = work_dir / "init"
    vision_accuracy = build_initial_model(settings, scene_config, init_dir)
    lap("vision_pretraining")
    stage1_dir = run_stage(settings.stage1, init_dir, data_dir, work_dir / "stage1", settings.seed)
    lap("stage1")
    model_dir = run_stage(settings.stage2, stage1_dir, data_dir, work_dir / "stage2", settings.seed)
    lap("stage2")
    baseline_dirs = {}
    for m in baselines:
        fixed = replace(settings.stage2, distribution=f"fixed:{m}")
        baseline_dirs[m] = run_stage(fixed, stage1_dir, data_dir, work_dir / f"baseline-m{m}", settings.seed)
        lap(f"baseline_m{m}")
    shutil.rmtree(init_dir)
    return TrainOutcome(model_dir, baseline_dirs, seconds, vision_accuracy)


__all__ = ["DEFAULT_MINUTES", "TrainOutcome", "TrainSettings", "build_initial_model", "train_demo"]
