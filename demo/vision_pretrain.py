"""Vision pre-training on dense per-patch labels: the demo's stand-in for CLIP's contrastive pre-training.

A CLIP-style vision tower trained from random weights learns, for every patch, the colour and the shape kind drawn
in it (labels from `shapes_vqa.patch_labels`) and the patch's own grid row and column, through linear heads on the
hidden state the query transformer reads (`vision_feature_layer`). Afterwards the heads are dropped and the tower is
frozen, as in the real recipe.

The row and column heads keep where each patch is in its features, as CLIP's patch features do. Without them the
tower is free to drop its position embeddings (a linear probe then finds a visual token's half of the image at chance),
and the language model can only work out an object's column from the index of its visual token.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn
from tqdm.auto import tqdm
from transformers import CLIPVisionConfig, CLIPVisionModel

logger = logging.getLogger(__name__)


@dataclass
class PatchLabelData:
    """Pre-training data.

    Attributes:
        pixel_values: [N, 3, H, W] float, normalised as the processor does.
        colors: [N, P] int64 patch colour classes (P = patches per image).
        shapes: [N, P] int64 patch shape classes.
    """

    pixel_values: torch.Tensor
    colors: torch.Tensor
    shapes: torch.Tensor

    def __post_init__(self) -> None:
        if not (len(self.pixel_values) == len(self.colors) == len(self.shapes)):
            raise ValueError(
                f"pixel_values, colors and shapes differ in length: "
                f"{len(self.pixel_values)}, {len(self.colors)}, {len(self.shapes)}"
            )


class PatchLogits(NamedTuple):
    """Per-patch logits: colors [B, P, num_colors], shapes [B, P, num_shapes], rows and columns [B, P, side]."""

    colors: torch.Tensor
    shapes: torch.Tensor
    rows: torch.Tensor
    columns: torch.Tensor


class PatchClassifier(nn.Module):
    """A vision tower plus per-patch colour, shape, row and column heads on hidden state `feature_layer` (CLS
    dropped). The grid is `side` x `side` patches (image_size // patch_size)."""

    def __init__(self, tower: CLIPVisionModel, feature_layer: int, num_colors: int, num_shapes: int):
        super().__init__()
        self.tower = tower
        self.feature_layer = feature_layer
        hidden = tower.config.hidden_size
        self.side = tower.config.image_size // tower.config.patch_size
        self.color_head = nn.Linear(hidden, num_colors)
        self.shape_head = nn.Linear(hidden, num_shapes)
        self.row_head = nn.Linear(hidden, self.side)
        self.column_head = nn.Linear(hidden, self.side)

    def forward(self, pixel_values: torch.Tensor) -> PatchLogits:
        """[B, 3, H, W] -> `PatchLogits` over the P = side**2 patches in row-major order."""
        hidden = self.tower(pixel_values, output_hidden_states=True).hidden_states[self.feature_layer][:, 1:]
        return PatchLogits(self.color_head(hidden), self.shape_head(hidden), self.row_head(hidden), self.column_head(hidden))

    def grid_labels(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The row and column of every patch: two [batch_size, P] int64 tensors."""
        index = torch.arange(self.side * self.side).expand(batch_size, -1)
        return index // self.side, index % self.side


@torch.no_grad()
def patch_accuracy(model: PatchClassifier, data: PatchLabelData, batch_size: int = 256) -> dict[str, float]:
    """Fraction of patches whose colour / shape / row / column is predicted right; `object_shape` counts only patches
    with a shape."""
    model.eval()
    color_hits = shape_hits = object_hits = row_hits = column_hits = 0
    for start in range(0, len(data.pixel_values), batch_size):
        logits = model(data.pixel_values[start : start + batch_size])
        colors, shapes = data.colors[start : start + batch_size], data.shapes[start : start + batch_size]
        rows, columns = model.grid_labels(len(colors))
        shape_right = logits.shapes.argmax(-1) == shapes
        color_hits += (logits.colors.argmax(-1) == colors).sum().item()
        shape_hits += shape_right.sum().item()
        object_hits += shape_right[shapes > 0].sum().item()
        row_hits += (logits.rows.argmax(-1) == rows).sum().item()
        column_hits += (logits.columns.argmax(-1) == columns).sum().item()
    patches = data.colors.numel()
    return {
        "color": color_hits / patches,
        "shape": shape_hits / patches,
        "object_shape": object_hits / max(1, int((data.shapes > 0).sum())),
        "row": row_hits / patches,
        "column": column_hits / patches,
    }


def pretrain_vision_tower(
    vision_config: CLIPVisionConfig,
    feature_layer: int,
    train: PatchLabelData,
    num_colors: int,
    num_shapes: int,
    steps: int,
    batch_size: int = 64,
    learning_rate: float = 2e-3,
    seed: int = 0,
) -> PatchClassifier:
    """Trains a fresh `CLIPVisionModel` with patch heads for `steps` steps; returns the classifier frozen, in eval mode.

    The trained tower is `result.tower`; `patch_accuracy(result, held_out)` measures what it learned.
    """
    torch.manual_seed(seed)
    model = PatchClassifier(CLIPVisionModel(vision_config), feature_layer, num_colors, num_shapes)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.01)
    warmup = max(1, steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps)))
    )
    generator = torch.Generator().manual_seed(seed)
    model.train()
    rows, columns = model.grid_labels(batch_size)  # the same grid for every batch
    bar = tqdm(range(steps), desc="vision pre-training", unit="step")
    for step in bar:
        index = torch.randint(len(train.pixel_values), (batch_size,), generator=generator)
        logits = model(train.pixel_values[index])
        loss = sum(
            nn.functional.cross_entropy(head_logits.flatten(0, 1), labels.flatten())
            for head_logits, labels in zip(logits, (train.colors[index], train.shapes[index], rows, columns), strict=True)
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % 20 == 0:
            bar.set_postfix(loss=f"{loss.item():.4f}")
    return model.eval().requires_grad_(False)


__all__ = ["PatchClassifier", "PatchLabelData", "PatchLogits", "patch_accuracy", "pretrain_vision_tower"]
