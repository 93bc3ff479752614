"""Tests of the Matryoshka collator (training/collator.py): one m per batch, assistant-only labels, TRL parity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from trl import SFTConfig, SFTTrainer

from mqt_llava.tools.testing import build_tiny_model, save_tiny_model
from mqt_llava.tools.toy_data import write_toy_dataset
from mqt_llava.training.collator import IGNORE_INDEX, MatryoshkaCollator
from mqt_llava.training.data import read_llava_dataset
from mqt_llava.training.sampling import parse_distribution

NUM_QUERIES = 16


@pytest.fixture(scope="module")
def processor():
    return build_tiny_model()[1]


@pytest.fixture(scope="module")
def examples(tmp_path_factory) -> list[dict]:
    """A two-exchange image example (record 2) and a shorter text-only one (record 3)."""
    folder = tmp_path_factory.mktemp("toy")
    dataset, _ = read_llava_dataset(*write_toy_dataset(folder, num_records=4, text_only_every=4))
    return [dataset[2], dataset[3]]


def _expected_answer_ids(processor, example: dict) -> list[int]:
    """Token ids of every assistant answer followed by </s>, in order: what the loss must see and nothing else."""
    tokenizer = processor.tokenizer
    ids = []
    for message in example["messages"]:
        if message["role"] == "assistant":
            ids += tokenizer(message["content"][0]["text"], add_special_tokens=False)["input_ids"]
            ids.append(tokenizer.eos_token_id)
    return ids


def test_labels_cover_exactly_the_assistant_answers(processor, examples) -> None:
    """Feature: labels are -100 on image tokens, system prompt, user turns and padding; answers keep their ids."""
    collator = MatryoshkaCollator(processor, parse_distribution("fixed:5", NUM_QUERIES))
    batch = collator(examples)
    input_ids, labels, attention_mask = batch["input_ids"], batch["labels"], batch["attention_mask"]

    assert batch["pixel_values"].shape[0] == 1
    assert (input_ids == processor.image_token_id).sum(dim=1).tolist() == [5, 0]
    assert attention_mask[1].sum() < attention_mask.shape[1], "the text-only row should be padded"
    for row, example in enumerate(examples):
        kept = labels[row] != IGNORE_INDEX
        assert labels[row][kept].tolist() == _expected_answer_ids(processor, example)
        assert torch.equal(labels[row][kept], input_ids[row][kept])
    assert (labels[input_ids == processor.image_token_id] == IGNORE_INDEX).all()
    assert (labels[attention_mask == 0] == IGNORE_INDEX).all()


def test_trl_stock_collator_gives_the_same_labels(tmp_path: Path, processor, examples) -> None:
    """Feature: TRL's own VLM collator with assistant_only_loss=True on a saved folder masks image tokens and user
    turns exactly like the project's collator (same input ids, same labels)."""
    model_dir = save_tiny_model(tmp_path / "model")
    dataset, _ = read_llava_dataset(*write_toy_dataset(tmp_path / "data", num_records=4, text_only_every=4))
    config = SFTConfig(
        output_dir=str(tmp_path / "out"),
        assistant_only_loss=True,
        bf16=False,
        use_cpu=True,
        activation_checkpointing=False,
        max_length=None,
        report_to="none",
        trust_remote_code=True,
    )
    trainer = SFTTrainer(model=str(model_dir), args=config, train_dataset=dataset)
    stock = trainer.data_collator(
        [{"messages": example["messages"], "images": list(example["images"])} for example in examples]
    )

    ours = MatryoshkaCollator(processor, parse_distribution("fixed:max", NUM_QUERIES)).collate(examples, NUM_QUERIES)
    assert torch.equal(stock["input_ids"], ours["input_ids"])
    assert torch.equal(stock["labels"], ours["labels"])
    assert (stock["input_ids"] == processor.image_token_id).sum().item() == NUM_QUERIES


def test_one_m_per_batch_follows_the_seeded_distribution(processor, examples) -> None:
    """Feature: each batch draws one m from the configured distribution with the per-rank seeded stream; the image run
    has exactly m tokens; draws are reproducible, restartable at an index, and differ across ranks."""
    distribution = parse_distribution("paper", NUM_QUERIES)
    collator = MatryoshkaCollator(processor, distribution, seed=3, rank=0)
    runs = []
    for _ in range(12):
        batch = collator(examples[:1])
        runs.append(int((batch["input_ids"] == processor.image_token_id).sum()))
    assert runs == [distribution.draw(3, 0, index) for index in range(12)]
    assert len(set(runs)) > 3

    collator.start_draws_at(5)
    assert collator.next_num_visual_tokens() == runs[5]
    other_rank = MatryoshkaCollator(processor, distribution, seed=3, rank=1)
    assert [other_rank.next_num_visual_tokens() for _ in range(12)] != runs

    counts = np.zeros(len(distribution.values))
    sampler = MatryoshkaCollator(processor, distribution, seed=11)
    for _ in range(4000):
        counts[distribution.values.index(sampler.next_num_visual_tokens())] += 1
    expected = 4000 / len(distribution.values)
    chi_square = float(((counts - expected) ** 2 / expected).sum())
    p_value = torch.special.gammaincc(torch.tensor((len(counts) - 1) / 2.0), torch.tensor(chi_square / 2.0)).item()
    assert p_value > 1e-3


def test_dataloader_workers_keep_the_draw_order(processor, examples) -> None:
    """Feature: with DataLoader workers, batch n still gets draw index n (round-robin dealing across workers)."""
    distribution = parse_distribution("uniform", NUM_QUERIES)
    collator = MatryoshkaCollator(processor, distribution, seed=5, rank=0)
    loader = torch.utils.data.DataLoader(examples[:1] * 6, batch_size=1, num_workers=2, collate_fn=collator)
    runs = [int((batch["input_ids"] == processor.image_token_id).sum()) for batch in loader]
    assert runs == [distribution.draw(5, 0, index) for index in range(6)]


def test_truncation_never_cuts_an_image_run(processor, examples) -> None:
    """Feature: max_length cuts long sequences on the right, but a cut reaching an image run is a clear error."""
    distribution = parse_distribution("fixed:max", NUM_QUERIES)
    full = MatryoshkaCollator(processor, distribution).collate(examples, NUM_QUERIES)
    first_image = int((full["input_ids"][0] == processor.image_token_id).nonzero()[0])
    cut = MatryoshkaCollator(processor, distribution, max_length=first_image + NUM_QUERIES + 2).collate(
        examples, NUM_QUERIES
    )
    assert cut["input_ids"].shape[1] == first_image + NUM_QUERIES + 2
    assert torch.equal(cut["labels"], full["labels"][:, : first_image + NUM_QUERIES + 2])
    with pytest.raises(ValueError, match="would cut an image-token run"):
        MatryoshkaCollator(processor, distribution, max_length=first_image + 3).collate(examples, NUM_QUERIES)


def test_per_image_draws_give_each_image_its_own_run(processor, examples) -> None:
    """Feature: draw_per="image" with copies=K: each example enters the batch K times, every image draws its own m
    from the seeded stream, and each row is exactly the row the paper's per-batch collation builds at that m (same
    ids, labels and mask, only padding differs)."""
    distribution = parse_distribution("uniform", NUM_QUERIES)
    collator = MatryoshkaCollator(processor, distribution, seed=7, rank=0, draw_per="image", copies=3)
    batch = collator(examples)
    budgets = distribution.draw_many(7, 0, 0, 3)  # one image per copy of the first example, none in the second
    assert batch["pixel_values"].shape[0] == 3 and len(set(budgets)) > 1
    runs = (batch["input_ids"] == processor.image_token_id).sum(dim=1).tolist()
    assert runs == [*budgets, 0, 0, 0]
    for row, (example, m) in enumerate(zip([examples[0]] * 3 + [examples[1]] * 3, [*budgets, 1, 1, 1])):
        alone = MatryoshkaCollator(processor, distribution).collate([example], m)
        length = alone["input_ids"].shape[1]
        for key in ("input_ids", "labels", "attention_mask"):
            assert torch.equal(batch[key][row, :length], alone[key][0]), (key, row)
        assert not batch["attention_mask"][row, length:].any()
    assert collator(examples)["pixel_values"].shape[0] == 3
    assert collator.next_image_budgets(4) == distribution.draw_many(7, 0, 2, 4)


def test_per_image_settings_are_checked(processor, examples) -> None:
    """Feature: unknown draw modes, copies without per-image draws, and budgets that do not fit are refused by name."""
    distribution = parse_distribution("uniform", NUM_QUERIES)
    with pytest.raises(ValueError, match="draw_per"):
        MatryoshkaCollator(processor, distribution, draw_per="example")
    with pytest.raises(ValueError, match="copies=2 needs draw_per='image'"):
        MatryoshkaCollator(processor, distribution, copies=2)
    with pytest.raises(ValueError, match="copies must be a positive integer"):
        MatryoshkaCollator(processor, distribution, draw_per="image", copies=0)
    collator = MatryoshkaCollator(processor, distribution, draw_per="image")
    with pytest.raises(ValueError, match="2 budgets were given for a batch with 1 image runs"):
        collator.collate(examples, [3, 4])
    with pytest.raises(ValueError, match="at least 1"):
        collator.collate(examples, [0])
