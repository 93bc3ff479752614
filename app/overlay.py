"""Where the visual tokens look: the query transformer's attention over the vision grid, drawn over the image as
the model sees it (after its image processor's padding, resizing and cropping)."""

from __future__ import annotations

import numpy as np
import torch
from matplotlib import colormaps
from PIL import Image, ImageDraw, ImageFont

__all__ = ["AttentionMap", "attention_maps", "model_view", "overlay_grid"]

AttentionMap = tuple[str, torch.Tensor]


def model_view(image_processor, image: Image.Image) -> np.ndarray:
    """The image after `image_processor`, mapped back to pixels: (H, W, 3) uint8 at the vision tower's size."""
    pixels = image_processor(image, return_tensors="pt")["pixel_values"][0].float()  # (3, H, W), normalised
    mean = torch.tensor(getattr(image_processor, "image_mean", None) or [0.0] * 3).view(3, 1, 1)
    std = torch.tensor(getattr(image_processor, "image_std", None) or [1.0] * 3).view(3, 1, 1)
    rgb = (pixels * std + mean).clamp(0.0, 1.0)
    return (rgb.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def attention_maps(attention: torch.Tensor, num_visual_tokens: int, first_tokens: int, head: int | None) -> list[AttentionMap]:
    """Titled maps (side, side) from `attention` (heads, M, side, side) at m = `num_visual_tokens`: first all m
    tokens summed (a patch read by several tokens is brighter; the map adds up to m), then each of the first
    `first_tokens` tokens (each adds up to 1). `head` picks one head (0-based); None averages over heads."""
    heads, num_queries = attention.shape[:2]
    if not 1 <= num_visual_tokens <= num_queries:
        raise ValueError(f"num_visual_tokens must be in 1..{num_queries}, got {num_visual_tokens}")
    if head is not None and not 0 <= head < heads:
        raise ValueError(f"head must be in 0..{heads - 1} or None (average), got {head}")
    per_token = attention.float().mean(0) if head is None else attention[head].float()  # (M, side, side)
    maps = [(f"m = {num_visual_tokens}: all tokens", per_token[:num_visual_tokens].sum(0))]
    maps += [(f"token {token + 1}", per_token[token]) for token in range(min(first_tokens, num_visual_tokens))]
    return maps


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow built without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _tile(view: np.ndarray, attention: torch.Tensor, tile: int, alpha: float) -> Image.Image:
    base = Image.fromarray(view).resize((tile, tile), Image.Resampling.NEAREST)
    peak = float(attention.max())
    scaled = (attention / peak).numpy() if peak > 0 else np.zeros(tuple(attention.shape))
    heat = Image.fromarray((colormaps["inferno"](scaled)[..., :3] * 255).astype(np.uint8))
    return Image.blend(base, heat.resize((tile, tile), Image.Resampling.NEAREST), alpha)


def overlay_grid(
    view: np.ndarray, maps: list[AttentionMap], tile: int = 160, columns: int = 2, alpha: float = 0.6, gap: int = 4
) -> Image.Image:
    """The maps over `view` (H, W, 3), `tile` pixels each with its title below, `columns` to a row, `gap` pixels
    apart. Colours are scaled per tile (brightest patch = top of the `inferno` colour map)."""
    caption = max(14, tile // 7)
    columns = max(1, min(columns, len(maps)))
    rows = -(-len(maps) // columns)
    step_x, step_y = tile + gap, tile + caption + gap
    sheet = Image.new("RGB", (columns * step_x - gap, rows * step_y - gap), "white")
    draw, font = ImageDraw.Draw(sheet), _font(caption - 4)
    for index, (title, attention) in enumerate(maps):
        row, column = divmod(index, columns)
        left, top = column * step_x, row * step_y
        sheet.paste(_tile(view, attention, tile, alpha), (left, top))
        draw.text((left + 3, top + tile + 1), title, fill="black", font=font)
    return sheet
