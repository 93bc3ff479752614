"""`attention.png`: where the visual tokens look, drawn over one test image, so coarse-to-fine shows at a glance."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
from PIL import Image

from mqt_llava.modeling_mqt_llava import MqtLlavaForConditionalGeneration
from mqt_llava.processing.processing_mqt_llava import MqtLlavaProcessor


@torch.no_grad()
def token_attention(model: MqtLlavaForConditionalGeneration, processor: MqtLlavaProcessor, image: Image.Image) -> torch.Tensor:
    """The query transformer's attention over the vision grid for all M tokens of `image`: (heads, M, side, side),
    from its last layer, on the CPU (whatever device the model is on)."""
    pixel_values = processor.image_processor(image, return_tensors="pt")["pixel_values"].to(model.device, model.dtype)
    features = model.model.get_vision_features(pixel_values)  # (1, N, D)
    _, weights = model.model.query_transformer(features, model.config.num_queries, output_attentions=True)
    last = weights[-1][0].float().cpu()  # (h, M, N)
    side = math.isqrt(last.shape[-1])
    return last.reshape(*last.shape[:2], side, side)


def _overlay(axis, image: np.ndarray, attention: torch.Tensor, title: str) -> None:
    axis.imshow(image)
    size = image.shape[0]
    axis.imshow(attention.numpy(), cmap="inferno", alpha=0.6, vmin=0.0, extent=(0, size, size, 0), interpolation="nearest")
    axis.set_title(title, fontsize=8)
    axis.axis("off")


def plot_token_attention(
    model: MqtLlavaForConditionalGeneration,
    processor: MqtLlavaProcessor,
    image: Image.Image,
    path: str | Path,
    first_tokens: int = 4,
    budgets: Sequence[int] = (4, 16),
) -> Path:
    """Top row: the image, then each of the first `first_tokens` tokens (attention averaged over heads), then all
    tokens of each budget m in `budgets` and of M (summed, so a patch read by several tokens is brighter). Bottom rows:
    token 1 head by head, which shows that one token already pools many places."""
    attention = token_attention(model, processor, image)  # (h, M, S, S)
    num_heads, num_queries = attention.shape[:2]
    pixels = np.asarray(image.convert("RGB"))
    budgets = [m for m in (*budgets, num_queries) if m <= num_queries]
    columns = max(1 + first_tokens + len(budgets), 8)
    head_rows = math.ceil(num_heads / columns)
    figure, axes = plt.subplots(1 + head_rows, columns, figsize=(1.6 * columns, 1.8 * (1 + head_rows)), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    axes[0, 0].imshow(pixels)
    axes[0, 0].set_title("image", fontsize=8)
    for token in range(min(first_tokens, num_queries)):
        _overlay(axes[0, 1 + token], pixels, attention[:, token].mean(0), f"token {token + 1} (heads averaged)")
    for offset, m in enumerate(budgets):
        _overlay(axes[0, 1 + first_tokens + offset], pixels, attention[:, :m].mean(0).sum(0), f"all tokens, m = {m}")
    for head in range(num_heads):
        row, column = divmod(head, columns)
        _overlay(axes[1 + row, column], pixels, attention[head, 0], f"token 1, head {head + 1}")
    figure.suptitle("Where the visual tokens look (query-transformer attention)", fontsize=10)
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


__all__ = ["plot_token_attention", "token_attention"]
