"""Each shipped recipe trains a tiny model: loss goes down, exactly the named parameters change; LoRA adapters and
merged folders reload with the same logits (training/recipes, training/sft.py, training/merge.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from bitsandbytes.nn import Linear4bit
from peft import PeftModel
from safetensors.torch import load_file, save_file
from transformers import AutoModelForImageTextToText

from conftest import run_isolated
from mqt_llava.cli import main as cli_main
from mqt_llava.tools.testing import save_tiny_model
from mqt_llava.tools.toy_data import write_toy_dataset
from mqt_llava.training.arguments import parse_recipe
from mqt_llava.training.sft import build_trainer

NUM_QUERIES = 16


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> dict[str, Path]:
    """A tiny model folder and a two-record dataset (batch 2 = the same fixed batch at every step)."""
    root = tmp_path_factory.mktemp("recipes")
    data_path, image_folder = write_toy_dataset(root / "data", num_records=2)
    return {"root": root, "model": save_tiny_model(root / "model"), "data": data_path, "images": image_folder}


def _tiny_run(workspace: dict[str, Path], recipe: str, learning_rate: float, *extra: str):
    """Builds the trainer of the shipped `recipe` scaled down to the tiny model (recipe name + keyword overrides, the
    Python API); returns (trainer, parameters before training)."""
    fields = dict(
        model_name_or_path=workspace["model"],
        data_path=workspace["data"],
        image_folder=workspace["images"],
        output_dir=workspace["root"] / recipe,
        max_steps=6,
        per_device_train_batch_size=2,
        gradient_accumulation_steps=1,
        learning_rate=learning_rate,
        warmup_steps=0,
        bf16=False,
        use_cpu=True,
        dataloader_num_workers=0,
        save_strategy="no",
        logging_steps=1,
        lora_r=4,
        lora_alpha=8,
    )
    trainer = build_trainer(*parse_recipe(recipe, list(extra), **fields))
    before = {name: parameter.detach().clone() for name, parameter in trainer.model.named_parameters()}
    return trainer, before


def _train_and_check(trainer, before: dict[str, torch.Tensor]) -> set[str]:
    """Trains; asserts the loss went down and that exactly the trainable parameters changed; returns their names."""
    trainable = {name for name, parameter in trainer.model.named_parameters() if parameter.requires_grad}
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == 6 and losses[-1] < losses[0] - 0.1, losses
    changed = {
        name
        for name, parameter in trainer.model.named_parameters()
        if not torch.equal(parameter.detach(), before[name])
    }
    assert changed == trainable
    return trainable


def test_stage1_trains_only_the_query_transformer_at_m_equal_M(workspace) -> None:
    """Feature: stage1_align recipe: only the query transformer changes, every batch uses m = M."""
    trainer, before = _tiny_run(workspace, "stage1_align", 1e-2, "--dtype", "float32")
    assert trainer.data_collator.distribution.values == (NUM_QUERIES,)
    trained = _train_and_check(trainer, before)
    assert trained == {name for name in before if name.startswith("model.query_transformer.")}


def test_stage2_trains_query_transformer_and_language_model(workspace) -> None:
    """Feature: stage2_instruct recipe: query transformer + language model (+ lm_head) change, the vision tower is
    bit-identical, m drawn from the paper's {2, 4, ..., M}."""
    trainer, before = _tiny_run(workspace, "stage2_instruct", 1e-3, "--dtype", "float32")
    assert trainer.data_collator.distribution.values == tuple(range(2, NUM_QUERIES + 1, 2))
    trained = _train_and_check(trainer, before)
    assert trained == {name for name in before if not name.startswith("model.vision_tower.")}
    assert any(name.startswith("model.vision_tower.") for name in before)


def test_frozen_parameters_stay_bit_identical_inside_a_trained_part(workspace) -> None:
    """Feature: frozen_parameters: the query transformer trains except its attention layout (queries, q/k
    projections), which stays bit-identical; a pattern that matches nothing is refused by name, and so is the option
    with LoRA."""
    layout = ["model.query_transformer.query$", r"model.query_transformer.layers.0.attention.[qk]_proj."]
    trainer, before = _tiny_run(
        workspace, "stage2_instruct", 1e-3, "--dtype", "float32", "--frozen_parameters", *layout
    )
    trained = _train_and_check(trainer, before)
    frozen = {"model.query_transformer.query"} | {
        f"model.query_transformer.layers.0.attention.{p}_proj.{w}" for p in "qk" for w in ("weight", "bias")
    }
    assert trained == {name for name in before if not name.startswith("model.vision_tower.")} - frozen
    with pytest.raises(ValueError, match="no_such_parameter"):
        _tiny_run(workspace, "stage2_instruct", 1e-3, "--frozen_parameters", "no_such_parameter")
    with pytest.raises(ValueError, match="do not apply to LoRA"):
        _tiny_run(workspace, "lora", 1e-3, "--frozen_parameters", *layout)


@pytest.fixture(scope="module")
def lora_run(workspace):
    """The lora recipe trained on the tiny model (float32 so that reloaded logits compare tightly), and its batch."""
    trainer, before = _tiny_run(workspace, "lora", 1e-2, "--dtype", "float32")
    trained = _train_and_check(trainer, before)
    trainer.save_model(trainer.args.output_dir)
    batch = trainer.data_collator.collate([trainer.train_dataset[0]], 4)
    batch.pop("labels")
    return trainer, trained, batch


def test_lora_adapts_only_the_language_model_and_trains_the_query_transformer(lora_run) -> None:
    """Feature: lora recipe: LoRA only on language-model projections (never the vision tower), the query transformer
    fully trained through modules_to_save, all base weights bit-identical."""
    trainer, trained, _ = lora_run
    lora_layers = [
        name for name, module in trainer.model.named_modules() if hasattr(module, "lora_A") and module.lora_A
    ]
    assert lora_layers and all(".language_model." in name for name in lora_layers)
    assert len(lora_layers) == 2 * 7  # 2 layers x (q, k, v, o, gate, up, down)
    for name in trained:
        is_lora = ".language_model." in name and (".lora_A." in name or ".lora_B." in name)
        is_query_copy = ".query_transformer.modules_to_save.default." in name
        assert is_lora or is_query_copy, name
    assert any(".query_transformer.modules_to_save.default." in name for name in trained)


def test_lora_adapter_and_merged_folder_reload_with_the_same_logits(tmp_path: Path, workspace, lora_run) -> None:
    """Feature: the adapter loads with PeftModel.from_pretrained on a fresh trust_remote_code base (same logits);
    `mqt-llava merge` writes a self-contained folder that a fresh process loads to the same logits."""
    trainer, _, batch = lora_run
    adapter_dir = Path(trainer.args.output_dir)
    assert (adapter_dir / "adapter_model.safetensors").is_file()
    trainer.model.eval()
    with torch.no_grad():
        trained_logits = trainer.model(**batch).logits

    base = AutoModelForImageTextToText.from_pretrained(workspace["model"], trust_remote_code=True)
    reloaded = PeftModel.from_pretrained(base, adapter_dir).eval()
    with torch.no_grad():
        reloaded_logits = reloaded(**batch).logits
    torch.testing.assert_close(reloaded_logits, trained_logits, rtol=1e-5, atol=1e-5)

    merged_dir = tmp_path / "merged"
    merge_command = [
        "merge",
        "--base",
        str(workspace["model"]),
        "--adapter",
        str(adapter_dir),
        "--output",
        str(merged_dir),
    ]
    assert cli_main(merge_command) == 0
    assert not (merged_dir / "adapter_config.json").exists()
    save_file({key: value.contiguous() for key, value in batch.items()}, tmp_path / "batch.safetensors")
    script = f"""
import json
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForImageTextToText, AutoProcessor
model = AutoModelForImageTextToText.from_pretrained({str(merged_dir)!r}, trust_remote_code=True).eval()
processor = AutoProcessor.from_pretrained({str(merged_dir)!r}, trust_remote_code=True)
batch = load_file({str(tmp_path / "batch.safetensors")!r})
with torch.no_grad():
    save_file({{"logits": model(**batch).logits}}, {str(tmp_path / "logits.safetensors")!r})
with open(RESULT_PATH, "w") as f:
    json.dump({{"model": type(model).__module__, "processor": type(processor).__name__}}, f)
"""
    loaded = run_isolated(script, tmp_path)
    assert loaded["processor"] == "MqtLlavaProcessor" and "modeling_mqt_llava" in loaded["model"]
    merged_logits = load_file(tmp_path / "logits.safetensors")["logits"]
    torch.testing.assert_close(merged_logits, reloaded_logits, rtol=1e-4, atol=1e-4)


def test_qlora_quantizes_only_the_language_model(workspace) -> None:
    """Feature: qlora recipe on CPU: Linear4bit layers in the language model only (vision tower, query transformer and
    lm_head stay full precision); training changes exactly the LoRA and query-transformer weights."""
    trainer, before = _tiny_run(workspace, "qlora", 1e-2)
    four_bit = [name for name, module in trainer.model.named_modules() if isinstance(module, Linear4bit)]
    assert len(four_bit) == 2 * 7 and all(".language_model." in name for name in four_bit)
    trained = _train_and_check(trainer, before)
    assert any(".lora_B." in name for name in trained)
    assert any(".query_transformer.modules_to_save.default." in name for name in trained)
    assert not any(".vision_tower." in name or "lm_head" in name for name in trained)


def test_qlora_in_float32_keeps_trainable_weights_in_float32(workspace) -> None:
    """Feature: with 4-bit layers computing in float32 (the CPU setting), the adapters and the fully trained query
    transformer stay float32 instead of TRL's bfloat16, so small updates are not rounded away: after a few steps at a
    small learning rate nearly every query-transformer weight has moved."""
    trainer, before = _tiny_run(workspace, "qlora", 1e-5, "--dtype", "float32")
    trainable = {name: p for name, p in trainer.model.named_parameters() if p.requires_grad}
    assert {p.dtype for p in trainable.values()} == {torch.float32}
    trainer.train()
    moved = [
        (parameter.detach() != before[name]).float().mean().item()
        for name, parameter in trainable.items()
        if ".query_transformer.modules_to_save." in name and parameter.dim() == 2
    ]
    assert moved and min(moved) > 0.9, moved


def test_stage2_with_per_image_draws_and_copies_trains(workspace) -> None:
    """Feature: the recipe fields num_visual_tokens_draw=image and num_visual_tokens_copies reach the collator, and a
    run whose batches mix budgets (each example scored at two m) trains like the paper's per-batch draw."""
    trainer, before = _tiny_run(
        workspace, "stage2_instruct", 1e-3, "--dtype", "float32",
        "--num_visual_tokens_draw", "image", "--num_visual_tokens_copies", "2",
    )  # fmt: skip
    assert (trainer.data_collator.draw_per, trainer.data_collator.copies) == ("image", 2)
    trained = _train_and_check(trainer, before)
    assert trained == {name for name in before if not name.startswith("model.vision_tower.")}
