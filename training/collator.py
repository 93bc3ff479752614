"""The Matryoshka data collator: one visual-token budget m per batch, labels on assistant answers only.

Usable as `SFTTrainer(data_collator=...)`. Each call draws m from the configured distribution with the seeded,
per-rank stream of `TokenBudgetDistribution.draw`, asks the processor for image runs of length m, and builds labels
that are -100 everywhere except on the assistant answers (image tokens, system prompt, user turns and padding never
count). The assistant spans come from the chat template's `{% generation %}` markers, the same source TRL's own
collator reads with `assistant_only_loss=True`, so both give the same labels.

Draw indices: the n-th batch built on a rank since `start_draws_at(offset)` uses draw index offset + n (with
DataLoader workers, batches are dealt round-robin, so worker w of W builds offset + w, offset + w + W, ...).
`MatryoshkaDrawCallback` sets the offset at every epoch start from the optimizer step, so a run resumed from a
checkpoint draws exactly the m an uninterrupted run would have drawn.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from transformers import ProcessorMixin, TrainerCallback
from trl.data_utils import prepare_multimodal_messages

from .sampling import TokenBudgetDistribution

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100


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

    Returns (per call) `input_ids` (B, L), `attention_mask` (B, L), `labels` (B, L) and, when the batch has images,
    `pixel_values` (n_images, 3, H, W).
    """

    processor: ProcessorMixin
    distribution: TokenBudgetDistribution
    seed: int = 0
    rank: int | None = None
    max_length: int | None = None
    pad_to_multiple_of: int | None = None
    draw_offset: int = 0
    num_draws: int = field(default=0, init=False)

    def start_draws_at(self, offset: int) -> None:
        """Makes the next batch use draw index `offset` (set from the optimizer step at every epoch start)."""
        self.draw_offset = offset
        self.num_draws = 0

    def next_num_visual_tokens(self) -> int:
        """Draws the m of the next batch from this rank's seeded stream."""
        worker = torch.utils.data.get_worker_info()
        local_index = self.num_draws
        self.num_draws += 1
        if worker is None:
            index = self.draw_offset + local_index
        else:
            index = self.draw_offset + local_index * worker.num_workers + worker.id
        rank = current_rank() if self.rank is None else self.rank
        return self.distribution.draw(self.seed, rank, index)

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        return self.collate(examples, self.next_num_visual_tokens())

    def collate(self, examples: list[dict[str, Any]], num_visual_tokens: int) -> dict[str, torch.Tensor]:
        """Builds the batch for a given m (no draw)."""
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


class MatryoshkaDrawCallback(TrainerCallback):
    """Keeps the collator's draw index in step with training, so resumed runs draw the same m as uninterrupted ones.

    At each epoch start the next batch is number `global_step * gradient_accumulation_steps` in both an uninterrupted
    run and a run resumed at that step (the trainer skips the already-trained batches without collating them).
    """

    def __init__(self, collator: MatryoshkaCollator):
        self.collator = collator

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.collator.start_draws_at(state.global_step * args.gradient_accumulation_steps)


__all__ = ["IGNORE_INDEX", "MatryoshkaCollator", "MatryoshkaDrawCallback", "current_rank"]
