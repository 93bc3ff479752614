"""`mqt-llava demo --lora`: a short adapter run on the new domain (spatial questions), reloaded the ways a user would."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from huggingface_hub import ModelCard
from PIL import Image

from conftest import REPO_ROOT, run_isolated
from mqt_llava.cli import main as cli_main
from mqt_llava.demo.cli import SHIPPED_MODEL, _check_args, add_arguments
from mqt_llava.demo.lora_train import LoraSettings, lora_overrides
from mqt_llava.demo.new_domain import NEW_DOMAIN_NAME, DomainData, accuracy_by_axis, held_out_splits
from mqt_llava.demo.sweep import normalise_answer
from mqt_llava.demo.targets import retention_misses
from mqt_llava.training.arguments import parse_recipe
from mqt_llava.evaluation.shapes_vqa import FAMILIES, SPATIAL_FAMILIES

pytestmark = pytest.mark.skipif(not (SHIPPED_MODEL / "config.json").is_file(), reason="the shipped model is not built")

BATCH_SIZE = 8


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory) -> Path:
    """`mqt-llava demo --lora` on a tiny budget, through the real console entry point in a subprocess."""
    out = tmp_path_factory.mktemp("demo_lora")
    command = [sys.executable, "-m", "mqt_llava", "demo", "--lora", "--lora-steps", "20", "--train-scenes", "48",
               "--test-scenes", "6", "--batch-size", str(BATCH_SIZE), "--out", str(out)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    completed = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=900, env=env, check=False)
    assert completed.returncode == 0, completed.stderr[-5000:]
    assert "new domain before" in completed.stdout
    return out / "lora"


def test_adapter_improves_the_new_domain_and_writes_the_report(lora_run):
    """Feature: the point of `--lora`. After a short run the adapted model answers the held-out new-domain split
    better than the base at m = M and on average over every m, and the run writes results.json (both domains before
    and after at every m, per axis, cost and sizes), table.md, curves.png, an adapter folder built with the demo's
    settings (query transformer left frozen, the settings' dropout) and a merged folder."""
    results = json.loads((lora_run / "results.json").read_text())
    m_values = results["m_values"]
    assert m_values == sorted({1, 2, 4, 8, 16, 32, results["num_queries"]})
    assert results["families"] == {"new": list(SPATIAL_FAMILIES), "old": list(FAMILIES)}
    for domain in ("new", "old"):
        for phase in ("before", "after"):
            curve = results["accuracy"][domain][phase]
            assert set(curve) == {str(m) for m in m_values}
            assert all(set(row) == {*results["families"][domain], "average"} for row in curve.values())
    new = results["accuracy"]["new"]
    top = str(results["num_queries"])
    assert new["after"][top]["average"] > new["before"][top]["average"]
    mean = {phase: sum(row["average"] for row in new[phase].values()) / len(m_values) for phase in new}
    assert mean["after"] > mean["before"], mean
    for phase in ("before", "after"):
        by_axis = results["accuracy_by_axis"][phase]
        assert set(by_axis) == {str(m) for m in m_values}
        assert all(set(row) <= {"exists_at", "count_at", "position_of"} for row in by_axis.values())
    assert results["training"]["seconds"] > 0 and results["training"]["peak_memory_mb"] > 0
    assert 0 < results["sizes"]["adapter_bytes"] < results["sizes"]["base_bytes"]
    assert "| m | new domain before |" in (lora_run / "table.md").read_text()
    with Image.open(lora_run / "curves.png") as image:
        image.verify()
        assert image.format == "PNG"
    assert "| family | left / right, before |" in (lora_run / "table.md").read_text()
    assert (lora_run / "adapter" / "adapter_config.json").is_file()
    adapter_config = json.loads((lora_run / "adapter" / "adapter_config.json").read_text())
    # the demo's default leaves the query transformer frozen: the adapter carries no fully trained copy of it
    assert not results["settings"]["train_query_transformer"] and not adapter_config["modules_to_save"]
    assert adapter_config["lora_dropout"] == results["settings"]["lora_dropout"]
    assert (lora_run / "merged" / "config.json").is_file() and not (lora_run / "merged" / "adapter_config.json").exists()


def test_adapter_and_merged_folder_reload_with_the_same_answers(lora_run, tmp_path):
    """Feature: the adapter is used the ways a user would. In a fresh interpreter that cannot import this repository,
    `PeftModel.from_pretrained` on the base loaded with `trust_remote_code=True`, and the merged folder through
    `pipeline("image-text-to-text")`, give exactly the answers the adapted model gave in the demo process."""
    results = json.loads((lora_run / "results.json").read_text())
    reload = results["reload"]
    assert reload["peft_matches"] == reload["merged_matches"] == reload["num_answers"] > 0
    result = run_isolated(
        f"""
        import json
        import torch
        from peft import PeftModel
        from PIL import Image
        from transformers import AutoModelForImageTextToText, AutoProcessor, pipeline
        spec = json.load(open({str(lora_run / "check" / "spec.json")!r}))
        base = AutoModelForImageTextToText.from_pretrained({str(SHIPPED_MODEL)!r}, trust_remote_code=True)
        model = PeftModel.from_pretrained(base, {str(lora_run / "adapter")!r}).eval()
        processor = AutoProcessor.from_pretrained({str(lora_run / "adapter")!r}, trust_remote_code=True)
        pipes = {{"peft": pipeline("image-text-to-text", model=model, processor=processor),
                 "merged": pipeline("image-text-to-text", model={str(lora_run / "merged")!r}, trust_remote_code=True)}}
        messages = [[{{"role": "user", "content": [{{"type": "image", "image": Image.open(path).convert("RGB")}},
                                                  {{"type": "text", "text": text}}]}}]
                    for path, text in zip(spec["images"], spec["questions"])]
        replies = {{}}
        for name, pipe in pipes.items():
            pipe.tokenizer.padding_side = "left"
            for m in spec["m_values"]:
                replies[f"{{name}} {{m}}"] = [
                    output[0]["generated_text"]
                    for start in range(0, len(messages), spec["batch_size"])
                    for output in pipe(text=messages[start : start + spec["batch_size"]], return_full_text=False,
                                       batch_size=spec["batch_size"],
                                       generate_kwargs={{"num_visual_tokens": m, "max_new_tokens": 3, "do_sample": False}})
                ]
        json.dump({{"replies": replies, "merged": type(pipes["merged"].model).__module__}}, open(RESULT_PATH, "w"))
        """,
        tmp_path,
    )
    assert result["merged"].startswith("transformers_modules")
    for m in reload["m_values"]:
        for name in ("peft", "merged"):
            answers = [normalise_answer(reply) for reply in result["replies"][f"{name} {m}"]]
            assert answers == reload["answers"][str(m)], (name, m)


def test_adapter_folder_pushes_with_a_card_naming_base_and_domain(lora_run, capsys):
    """Feature: `mqt-llava push --dry-run` accepts the adapter folder (PEFT config and safetensors, no pickles) and
    lists its model card, whose metadata names the base model and whose text names the new domain."""
    adapter = lora_run / "adapter"
    assert cli_main(["push", str(adapter), "--repo-id", "org/adapter", "--dry-run"]) == 0
    listed = capsys.readouterr().out
    for name in ("README.md", "adapter_config.json", "adapter_model.safetensors"):
        assert name in listed
    card = ModelCard.load(adapter / "README.md")
    assert card.data.library_name == "peft" and card.data.base_model == "evaluation/assets/mqt-llava-tiny"
    assert NEW_DOMAIN_NAME in card.content and "PeftModel.from_pretrained" in card.content


def test_accuracy_by_axis_separates_left_right_from_top_bottom():
    """Protects the per-axis breakdown of the report (`accuracy_by_axis`), the check that tells a model blind to
    left/right from one that cannot place objects: a model right on every top/bottom question and wrong on every
    left/right one scores 1 and 0; `color_at` (a quadrant, not a half) is left out; misaligned answers are refused."""
    records = held_out_splits(12, 0, 1, 0)["new"]
    questions = [question for record in records for question in record.questions]
    rows = [(q.family, q.answer, q.answer if q.params.get("axis") != "horizontal" else "wrong") for q in questions]
    by_axis = accuracy_by_axis(records, rows)
    assert set(by_axis) == {"exists_at", "count_at", "position_of"}
    for family, row in by_axis.items():
        assert row == {"horizontal": 0.0, "vertical": 1.0}, family
    with pytest.raises(ValueError, match="answers for"):
        accuracy_by_axis(records, rows[:-1])
    with pytest.raises(ValueError, match="out of order"):
        accuracy_by_axis(records, rows[1:] + rows[:1])


def test_retention_check_flags_a_drop_beyond_three_points():
    """Protects `retention_misses`, the old-domain target of `--lora`: a drop of more than 3 points at one m is
    named with its m, smaller drops and gains pass, and a curve missing an m is refused."""
    before = {"4": {"average": 0.80}, "64": {"average": 0.99}}
    assert retention_misses(before, {"4": {"average": 0.78}, "64": {"average": 1.0}}) == []
    misses = retention_misses(before, {"4": {"average": 0.70}, "64": {"average": 0.99}})
    assert len(misses) == 1 and "m = 4" in misses[0]
    with pytest.raises(ValueError, match=r"m = \['64'\]"):
        retention_misses(before, {"4": {"average": 0.80}})


def test_demo_lora_settings_reach_the_recipe(tmp_path):
    """Protects `lora_overrides`: the demo's adapter settings (rank, alpha, dropout, steps, the per-image draw of m)
    arrive in the arguments `mqt-llava train lora` parses, over the recipe's own values; a dropout outside [0, 1) is
    refused by name."""
    settings = LoraSettings(lora_r=8, lora_alpha=16, lora_dropout=0.1, max_steps=7)
    data = DomainData(tmp_path / "train.json", tmp_path, 1, 0)
    matryoshka_args, training_args, model_args = parse_recipe("lora", lora_overrides(settings, tmp_path, data, tmp_path / "out"))
    assert (model_args.lora_r, model_args.lora_alpha, model_args.lora_dropout) == (8, 16, 0.1)
    assert training_args.max_steps == 7 and matryoshka_args.num_visual_tokens_draw == "image"
    with pytest.raises(ValueError, match="lora_dropout"):
        LoraSettings(lora_dropout=1.0)


def test_lora_options_are_checked():
    """Feature: clear errors. LoRA-only options without --lora, --lora with --train, and a non-positive step count
    are refused with a message naming the option."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    with pytest.raises(ValueError, match="--qlora"):
        _check_args(parser.parse_args(["--qlora"]))
    with pytest.raises(ValueError, match="--train"):
        _check_args(parser.parse_args(["--lora", "--train"]))
    with pytest.raises(ValueError, match="--lora-steps"):
        _check_args(parser.parse_args(["--lora", "--lora-steps", "0"]))
