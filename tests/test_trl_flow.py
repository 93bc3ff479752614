"""TRL's stock SFT flow on a saved folder: assistant_only_loss with the shipped chat template masks images and
user turns, and one real training step runs through TRL's trainer."""

from __future__ import annotations

import torch
from datasets import Dataset
from transformers import AutoModelForImageTextToText, AutoProcessor
from trl import SFTConfig, SFTTrainer

from mqt_llava.tools.testing import make_image


def example(question: str, answer: str, seed: int) -> dict:
    return {
        "messages": [
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]},
            {"role": "assistant", "content": [{"type": "text", "text": answer}]},
            {"role": "user", "content": [{"type": "text", "text": "how many ?"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "two"}]},
        ],
        "images": [make_image(seed)],
    }


def test_stock_trl_collator_masks_images_and_user_turns(tiny_model_dir, tmp_path):
    """Protects docs/architecture.md §4 for TRL users: with assistant_only_loss=True, labels are -100 at every image
    position, every user turn and the system prompt; only the answers and their </s> count; a step trains."""
    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir, trust_remote_code=True)
    processor = AutoProcessor.from_pretrained(tiny_model_dir, trust_remote_code=True)
    dataset = Dataset.from_list([example("what is in the image ?", "a red circle", 1), example("describe the picture .", "blue", 2)])
    args = SFTConfig(
        output_dir=str(tmp_path), assistant_only_loss=True, max_steps=1, per_device_train_batch_size=2,
        bf16=False, use_cpu=True, report_to="none", gradient_checkpointing=False, max_length=None, save_strategy="no",
    )
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=processor)
    batch = trainer.data_collator([dataset[0], dataset[1]])
    ids, labels = batch["input_ids"], batch["labels"]
    image_id = processor.image_token_id
    assert ((ids == image_id).sum(dim=1) == 16).all()
    assert (labels[ids == image_id] == -100).all()
    tokenizer = processor.tokenizer
    for row, answers in enumerate([["a red circle", "two"], ["blue", "two"]]):
        expected = sum((tokenizer(a + "</s>", add_special_tokens=False)["input_ids"] for a in answers), [])
        assert ids[row][labels[row] != -100].tolist() == expected
    before = model.model.query_transformer.query.detach().clone()
    trainer.train()
    assert torch.isfinite(torch.tensor(trainer.state.log_history[-1]["train_loss"]))
    assert not torch.equal(before, model.model.query_transformer.query.detach())
