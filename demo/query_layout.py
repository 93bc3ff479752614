"""A coarse-to-fine starting layout for the demo's query transformer: the first visual tokens pool the whole image.

With position-only keys, where each query looks is the same for every image, so it can be chosen before training.
`coarse_to_fine_layout` gives every (query, head) pair a Gaussian window over the vision grid (attention logit
-sharpness * |patch - centre|^2, in patch units):

- tokens 4k .. 4k+3 (a "round") cover the four quadrants in reading order, so any first 4k tokens cover the whole
  image evenly;
- in the first rounds (as many as a quadrant has cells) the heads of a token split into groups, one group per cell of
  its quadrant; each round hands every cell to the next group, so after these rounds every cell has been read through
  every head, i.e. through the whole value width;
- later rounds read single patches, one head per patch of the quadrant, again rotating heads between rounds.

For the demo (8 x 8 patches, cells of 2 x 2 patches, 16 heads, M = 64): m = 1 shows one quadrant at cell level, m = 4
every cell through a quarter of the heads, m = 16 every cell through all heads, and m > 16 adds patch detail.

`fit_attention_layout_` makes a fresh query transformer attend that way by fitting the parameters that decide where it
looks (learned queries, q/k projections, their layer norms) to the layout, by gradient descent on the KL divergence.
Stage 1 and 2 then train them like every other weight.
"""

from __future__ import annotations

import torch

from mqt_llava.modeling_mqt_llava.query_transformer import MatryoshkaQueryTransformer

QUADRANTS = 4
CELL_SHARPNESS = 3.0
PATCH_SHARPNESS = 5.0


def coarse_to_fine_layout(patches_per_side: int, cell_patches: int, num_queries: int, num_heads: int) -> torch.Tensor:
    """Target attention weights of the layout in the module docstring: (num_heads, num_queries, patches_per_side**2).

    `cell_patches` is the side of a scene cell in patches. The heads must split evenly over the cells of a quadrant
    and divide its patches; `num_queries` must be a multiple of 4.
    """
    half = patches_per_side // 2
    if patches_per_side % 2 or half % cell_patches:
        raise ValueError(f"a quadrant ({patches_per_side} // 2 patches a side) must hold whole cells of {cell_patches} patches")
    cells_per_side = half // cell_patches
    cells, patches = cells_per_side**2, half**2
    if num_queries % QUADRANTS:
        raise ValueError(f"the coarse-to-fine layout needs num_queries divisible by {QUADRANTS}, got {num_queries}")
    if num_heads % cells or patches % num_heads:
        raise ValueError(f"{num_heads} heads must split evenly over the {cells} cells of a quadrant and divide its {patches} patches")
    origins = [(0, 0), (0, half), (half, 0), (half, half)]
    centres = torch.zeros(num_queries, num_heads, 2)
    sharpness = torch.zeros(num_queries, num_heads)
    for query in range(num_queries):
        round_, quadrant = divmod(query, QUADRANTS)
        top, left = origins[quadrant]
        for head in range(num_heads):
            if round_ < cells:
                row, col = divmod((head // (num_heads // cells) + round_) % cells, cells_per_side)
                offset = (cell_patches - 1) / 2  # the centre of a cell lies between its patches
                centres[query, head] = torch.tensor([top + row * cell_patches + offset, left + col * cell_patches + offset])
                sharpness[query, head] = CELL_SHARPNESS
            else:
                row, col = divmod((head + round_) % patches, half)
                centres[query, head] = torch.tensor([top + row, left + col], dtype=torch.float32)
                sharpness[query, head] = PATCH_SHARPNESS
    rows, cols = torch.meshgrid(torch.arange(patches_per_side), torch.arange(patches_per_side), indexing="ij")
    grid = torch.stack([rows.flatten(), cols.flatten()], dim=1).float()  # (N, 2)
    squared_distance = (centres[:, :, None, :] - grid[None, None]).pow(2).sum(-1)  # (M, H, N)
    return torch.softmax(-sharpness[..., None] * squared_distance, dim=-1).transpose(0, 1)  # (H, M, N)


def fit_attention_layout_(
    query_transformer: MatryoshkaQueryTransformer, target: torch.Tensor, steps: int = 1500, learning_rate: float = 1e-2
) -> float:
    """Fits the first layer's attention (weights (H, M, N), any image) to `target` of the same shape by adjusting the
    learned queries, `q_proj`, `k_proj` and the query and key layer norms. Returns the final mean KL(target || fitted)
    in nats. Needs position-only keys, where attention does not depend on the image."""
    if query_transformer.key_source != "position":
        raise ValueError("a fixed attention layout needs position-only keys (query_key_source='position')")
    layer = query_transformer.layers[0]
    num_heads, num_queries, num_patches = target.shape
    if (num_heads, num_queries) != (layer.attention.num_heads, query_transformer.num_queries):
        raise ValueError(
            f"layout for {num_heads} heads x {num_queries} queries does not fit a query transformer with "
            f"{layer.attention.num_heads} heads x {query_transformer.num_queries} queries"
        )
    parameters = [query_transformer.query, *layer.query_norm.parameters(), *layer.key_norm.parameters(),
                  *layer.attention.q_proj.parameters(), *layer.attention.k_proj.parameters()]  # fmt: skip
    optimizer = torch.optim.Adam(parameters, lr=learning_rate)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    features = torch.zeros(1, num_patches, layer.attention.hidden_size)  # keys ignore the image; values don't matter
    log_target = target.clamp_min(1e-12).log()
    for _ in range(steps):
        _, weights = query_transformer(features, num_queries, output_attentions=True)
        log_weights = weights[0][0].float().clamp_min(1e-12).log()  # (H, M, N)
        loss = (target * (log_target - log_weights)).sum(-1).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    return float(loss.detach())


__all__ = ["coarse_to_fine_layout", "fit_attention_layout_"]
