"""The Matryoshka data collator: visual-token budgets m drawn per batch (or per image), labels on answers only.

Usable as `SFTTrainer(data_collator=...)`. Each call draws m from the configured distribution with the seeded,
per-rank stream of `TokenBudgetDistribution.draw`, asks the processor for image runs of length m, and builds labels
that are -100 everywhere except on the assistant answers (image tokens, system prompt, user turns and padding never
count). The assistant spans come from the chat template's `{% generation %}` markers, the same source TRL's own
collator reads with `assistant_only_loss=True`, so both give the same labels.

The paper draws one m per batch (`draw_per="batch"`). With `draw_per="image"` every image draws its own m, so one
optimizer step trains many budgets; `copies=K` also puts each example K times into the batch, each copy with its own
draws, so the same image is scored at K budgets in one step (the model encodes each copy's image anew).

Draw indices: the n-th batch built on a rank since `start_draws_at(offset)` uses draw index offset + n (with
DataLoader workers, batches are dealt round-robin, so worker w of W builds offset + w, offset + w + W, ...).
`MatryoshkaDrawCallback` sets the offset at every epoch start from the optimizer step, so a run resumed from a
checkpoint draws exactly the m an uninterrupted run would have drawn.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from transformers import ProcessorMixin, TrainerCallback
from trl.data_utils import prepare_multimodal_messages

from .sampling import TokenBudgetDistribution

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100
DRAW_MODES = ("batch", "image")


def current_rank() -> int:
    """Rank of this process in the default process group (0 when not distributed)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank()
    return 0


@dataclass
class MatryoshkaCollator:
    """Builds training batches from TRL conversational examples (`messages` + `images`) with one m per batch.

    Args:
        processor: an `MqtLlavaProcessor` (its chat template must mark assistant answers with `{% generation %}`).
        distribution: the distribution of m (see `training.sampling.parse_distribution`).
        seed: base seed of the draws (use the trainer's seed).
        rank: process rank for the per-rank stream; None reads it from torch.distributed at each call.
        max_length: longest sequence kept; longer ones are cut on the right, and a cut that would reach an image run
            raises `ValueError`. None keeps everything.
        pad_to_multiple_of: pad the sequence length up to a multiple of this.
        draw_per: `batch` (one m for the whole batch, the paper) or `image` (one m per image).
        copies: how many times each example enters the batch, each copy with its own draws (`draw_per="image"`).

    Returns (per call) `input_ids` (B, L), `attention_mask` (B, L), `labels` (B, L) and, when the batch has images,
    `pixel_values` (n_images, 3, H, W).
    """

    processor: ProcessorMixin
    distribution: TokenBudgetDistribution
    seed: int = 0
    rank: int | None = None
    max_length: int | None = None
    pad_to_multiple_of: int | None = None
    draw_per: str = "batch"
    copies: int = 1
    draw_offset: int = 0
    num_draws: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.draw_per not in DRAW_MODES:
            raise ValueError(f"draw_per must be one of {DRAW_MODES}, got {self.draw_per!r}")
        if isinstance(self.copies, bool) or not isinstance(self.copies, int) or self.copies < 1:
            raise ValueError(f"copies must be a positive integer, got {self.copies!r}")
        if self.copies > 1 and self.draw_per != "image":
            raise ValueError(f"copies={self.copies} needs draw_per='image': copies with one m per batch are duplicates")

    def start_draws_at(self, offset: int) -> None:
        """Makes the next batch use draw index `offset` (set from the optimizer step at every epoch start)."""
        self.draw_offset = offset
        self.num_draws = 0

    def next_num_visual_tokens(self) -> int:
        """Draws the m of the next batch from this rank's seeded stream."""
        return self.distribution.draw(*self._next_draw())

    def next_image_budgets(self, num_images: int) -> list[int]:
        """Draws one m per image of the next batch from this rank's seeded stream."""
        return self.distribution.draw_many(*self._next_draw(), num_images)

    def _next_draw(self) -> tuple[int, int, int]:
        """(seed, rank, draw index) of the next batch."""
        worker = torch.utils.data.get_worker_info()
        local_index = self.num_draws
        self.num_draws += 1
        if worker is None:
            index = self.draw_offset + local_index
        else:
            index = self.draw_offset + local_index * worker.num_workers + worker.id
        rank = current_rank() if self.rank is None else self.rank
        return self.seed, rank, index

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        if self.draw_per == "batch":
            return self.collate(examples, self.next_num_visual_tokens())
        examples = [example for example in examples for _ in range(self.copies)]
        num_images = sum(len(example.get("images") or []) for example in examples)
        return self.collate(examples, self.next_image_budgets(num_images))

    def collate(self, examples: list[dict[str, Any]], num_visual_tokens: int | Sequence[int]) -> dict[str, torch.Tensor]:
        """Builds the batch for a given m, or for one m per image in batch order (no draw)."""
        budgets = None
        if not isinstance(num_visual_tokens, int):
            budgets = torch.tensor(list(num_visual_tokens), dtype=torch.long)
            if budgets.numel() and int(budgets.min()) < 1:
                raise ValueError(f"every per-image num_visual_tokens must be at least 1, got {budgets.tolist()}")
            num_visual_tokens = int(budgets.max()) if budgets.numel() else self.distribution.values[-1]
        conversations = [
            prepare_multimodal_messages(example["messages"], images=list(example.get("images") or []))
            for example in examples
        ]
        # Lists, converted below: transformers finds the assistant tokens by looping over the token offsets in
        # Python, which is much slower over tensors than over lists (docs/training.md gives the measurement).
        batch = self.processor.apply_chat_template(
            conversations,
            tokenize=True,
            return_dict=True,
            return_tensors=None,
            return_assistant_tokens_mask=True,
            processor_kwargs={
                "num_visual_tokens": num_visual_tokens,
                "padding": True,
                "padding_side": "right",
                "pad_to_multiple_of": self.pad_to_multiple_of,
            },
        )
        input_ids, attention_mask = torch.tensor(batch["input_ids"]), torch.tensor(batch["attention_mask"])
        is_image = input_ids == self.processor.image_token_id
        answers = torch.tensor(batch["assistant_masks"], dtype=torch.bool)
        labels = input_ids.masked_fill((attention_mask == 0) | ~answers | is_image, IGNORE_INDEX)
        output = {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}
        if budgets is not None:
            output = shorten_image_runs(
                output, self.processor.image_token_id, budgets, self.processor.tokenizer.pad_token_id,
                self.pad_to_multiple_of,
            )  # fmt: skip
            input_ids, attention_mask = output["input_ids"], output["attention_mask"]
            is_image = input_ids == self.processor.image_token_id
        if "pixel_values" in batch:
            output["pixel_values"] = torch.from_numpy(np.stack(batch["pixel_values"]))
        if self.max_length is not None and input_ids.shape[1] > self.max_length:
            cut_runs = is_image[:, self.max_length :].any(dim=1)
            if cut_runs.any():
                rows = cut_runs.nonzero().flatten().tolist()
                raise ValueError(
                    f"max_length={self.max_length} would cut an image-token run (m={num_visual_tokens}) in batch "
                    f"row(s) {rows}, whose lengths are {attention_mask[rows].sum(dim=1).tolist()}; raise max_length"
                )
            for key in ("input_ids", "attention_mask", "labels"):
                output[key] = output[key][:, : self.max_length]
        return output


def shorten_image_runs(
    batch: dict[str, torch.Tensor],
    image_token_id: int,
    budgets: torch.Tensor,
    pad_token_id: int,
    pad_to_multiple_of: int | None = None,
) -> dict[str, torch.Tensor]:
    """Keeps the first `budgets[i]` tokens of image run i (runs counted row by row, left to right) and re-pads.

    `batch` holds right-padded `input_ids`, `attention_mask` and `labels` (B, L); budgets (n_runs,). Image tokens
    carry no label, so only image tokens are dropped. Returns the same keys with shape (B, L').
    """
    input_ids, attention_mask = batch["input_ids"], batch["attention_mask"]
    is_image = input_ids == image_token_id
    starts = is_image.clone()
    starts[:, 1:] &= ~is_image[:, :-1]
    if int(starts.sum()) != budgets.numel():
        raise ValueError(f"{budgets.numel()} budgets were given for a batch with {int(starts.sum())} image runs")
    if budgets.numel() == 0:
        return batch
    run = (starts.flatten().cumsum(0) - 1).clamp(min=0).view_as(input_ids)  # (B, L) index of the latest run
    offset = torch.arange(input_ids.numel()).view_as(input_ids) - starts.flatten().nonzero().flatten()[run]
    keep = (attention_mask == 1) & (~is_image | (offset < budgets[run]))
    length = int(keep.sum(dim=1).max())
    if pad_to_multiple_of:
        length = -(-length // pad_to_multiple_of) * pad_to_multiple_of
    fill = {"input_ids": pad_token_id, "attention_mask": 0, "labels": IGNORE_INDEX}
    output = {}
    for key, value in fill.items():
        rows = batch[key].new_full((input_ids.shape[0], length), value)
        for row in range(input_ids.shape[0]):
            kept = batch[key][row][keep[row]]
            rows[row, : kept.numel()] = kept
        output[key] = rows
    return output


class MatryoshkaDrawCallback(TrainerCallback):
    """Keeps the collator's draw index in step with training, so resumed runs draw the same m as uninterrupted ones.

    At each epoch start the next batch is number `global_step * gradient_accumulation_steps` in both an uninterrupted
    run and a run resumed at that step (the trainer skips the already-trained batches without collating them).
    """

    def __init__(self, collator: MatryoshkaCollator):
        self.collator = collator

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.collator.start_draws_at(state.global_step * args.gradient_accumulation_steps)


__all__ = [
    "DRAW_MODES",
    "IGNORE_INDEX",
    "MatryoshkaCollator",
    "MatryoshkaDrawCallback",
    "current_rank",
    "shorten_image_runs",
]
