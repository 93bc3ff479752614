"""`mqt-llava demo --lora [--qlora]`: teach the demo model a new domain with an adapter, and show what it cost.

Steps:
1. export the new domain's training split (`new_domain`: spatial questions) plus replayed old-domain scenes;
2. train an adapter on the demo model through the shipped `lora` (or `qlora`) recipe (`lora_train`), timed, with the
   process's peak memory, before anything else is loaded;
3. answer the held-out test splits of both domains at every m the demo sweeps, with the base model and with the
   adapted model as trained;
4. merge the adapter into the full-precision base (`mqt-llava merge`), write Hub cards into the adapter and merged
   folders, and reload both in a fresh interpreter (`reload_check.py`) to compare its answers with those of step 3;
5. write `results.json`, `table.md` and `curves.png`, and print the report.
Outputs go to OUT/lora (OUT/qlora with --qlora): `adapter/`, `merged/`, `data/`, `check/` and the three files.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from transformers import Pipeline, pipeline

from mqt_llava.evaluation.shapes_vqa import DEFAULT_TEST_SCENES, FAMILIES, SceneRecord
from mqt_llava.training.merge import merge_adapter

from .card import recorded_results
from .cli import EXAMPLE_BUDGETS, SHIPPED_MODEL, export_folder, machine_description
from .lora_card import write_cards
from .lora_report import format_report, plot_curves, write_results
from .lora_train import LoraOutcome, LoraSettings, train_adapter
from .new_domain import (
    EXTENDS,
    NEW_DOMAIN_DESCRIPTION,
    NEW_DOMAIN_NAME,
    NEW_FAMILIES,
    NEW_FLOORS_AT_M,
    NEW_TEST_SPLIT,
    OLD_TEST_SPLIT,
    accuracy_by_axis,
    chance_levels,
    export_training_data,
    held_out_splits,
)
from .sweep import accuracy_by_family, answer_questions, load_pipeline, normalise_answer
from .targets import curve_misses, retention_misses

logger = logging.getLogger(__name__)

RELOAD_SCRIPT = Path(__file__).with_name("reload_check.py")
SHIPPED_MODEL_NAME = "evaluation/assets/mqt-llava-tiny"


def lora_settings(args: argparse.Namespace) -> LoraSettings:
    """The adapter's settings: the defaults of `LoraSettings`, with the recipe, steps, scenes and seed of `args`."""
    settings = LoraSettings(recipe="qlora" if args.qlora else "lora")
    changes = {"max_steps": args.lora_steps, "num_train_scenes": args.train_scenes, "seed": args.seed}
    return dataclasses.replace(settings, **{name: value for name, value in changes.items() if value is not None})


def sweep_answers(
    pipe: Pipeline, records: Sequence[SceneRecord], m_values: Sequence[int], batch_size: int
) -> dict[str, list[tuple[str, str, str]]]:
    """Every question of `records` answered at each m: {"m": [(family, gold, predicted), ...]} in record order."""
    return {str(m): answer_questions(pipe, records, m, batch_size, desc=f"m={m}") for m in m_values}


def adapted_pipeline(outcome: LoraOutcome) -> Pipeline:
    """The trained PeftModel (in eval mode) and its processor in an `image-text-to-text` pipeline, padded on the left."""
    model = outcome.trainer.model.eval()
    pipe = pipeline("image-text-to-text", model=model, processor=outcome.trainer.processing_class)
    pipe.tokenizer.padding_side = "left"
    return pipe


def _quantization(outcome: LoraOutcome) -> dict[str, Any] | None:
    config = getattr(outcome.trainer.model.config, "quantization_config", None)
    if config is None:
        return None
    return config if isinstance(config, dict) else config.to_dict()


def reload_check(
    outcome: LoraOutcome,
    base_dir: Path,
    adapter_dir: Path,
    merged_dir: Path,
    records: Sequence[SceneRecord],
    answers: dict[str, list[tuple[str, str, str]]],
    check_dir: Path,
    batch_size: int,
) -> dict[str, Any]:
    """Reloads the adapter (PeftModel on a trust_remote_code base) and the merged folder (pipeline) in a fresh
    interpreter, answers the first (up to) two batches of `records`' questions at m in EXAMPLE_BUDGETS + M, and
    counts how many answers equal `answers` (the adapted model's, as trained)."""
    check_dir.mkdir(parents=True, exist_ok=True)
    items = [(record, question) for record in records for question in record.questions][: 2 * batch_size]
    for record in {record.scene_id: record for record, _ in items}.values():
        record.image().save(check_dir / f"{record.scene_id}.png")
    swept = {int(m) for m in answers}
    m_values = sorted(swept & {*EXAMPLE_BUDGETS, max(swept)})
    spec = {
        "base": str(base_dir),
        "adapter": str(adapter_dir),
        "merged": str(merged_dir),
        "quantization": _quantization(outcome),
        "images": [str(check_dir / f"{record.scene_id}.png") for record, _ in items],
        "questions": [question.text for _, question in items],
        "m_values": m_values,
        "batch_size": batch_size,
    }
    spec_path, result_path = check_dir / "spec.json", check_dir / "replies.json"
    spec_path.write_text(json.dumps(spec, indent=1) + "\n")
    completed = subprocess.run(
        [sys.executable, str(RELOAD_SCRIPT), str(spec_path), str(result_path)], capture_output=True, text=True, check=False
    )
    if completed.returncode != 0:
        raise RuntimeError(f"reloading the adapter in a fresh process failed:\n{completed.stderr[-4000:]}")
    replies = json.loads(result_path.read_text())
    expected = {str(m): [predicted for _, _, predicted in answers[str(m)][: len(items)]] for m in m_values}
    matches = {
        name: sum(normalise_answer(reply) == want for m in expected for reply, want in zip(replies[name][str(m)], expected[str(m)]))
        for name in ("peft", "merged")
    }
    return {
        "m_values": m_values,
        "num_questions": len(items),
        "num_answers": len(items) * len(m_values),
        "answers": expected,
        "peft_matches": matches["peft"],
        "merged_matches": matches["merged"],
        "classes": replies["classes"],
    }


def _folder_bytes(folder: Path, pattern: str) -> int:
    return sum(path.stat().st_size for path in folder.glob(pattern))


def _split_info(name: str, seed: int, records: Sequence[SceneRecord], families: Sequence[str]) -> dict[str, Any]:
    questions = [question for record in records for question in record.questions]
    return {"split": name, "seed": seed, "num_scenes": len(records),
            "num_questions": {family: sum(q.family == family for q in questions) for family in families}}  # fmt: skip


def run_lora(args: argparse.Namespace) -> int:
    """Runs steps 1-5 of the module docstring with the options of `mqt-llava demo`."""
    started = time.perf_counter()
    settings = lora_settings(args)
    base_dir = args.model or SHIPPED_MODEL
    if not (base_dir / "config.json").is_file():
        raise FileNotFoundError(f"no model folder at {base_dir} (config.json missing)")
    base_name = SHIPPED_MODEL_NAME if args.model is None else str(args.model)
    out: Path = args.out / settings.recipe
    work = out / "work"

    data = export_training_data(out / "data", settings.num_train_scenes, settings.replay_fraction, settings.seed)
    outcome = train_adapter(settings, base_dir, data, work / "adapter")
    load_average = ", ".join(f"{value:.1f}" for value in os.getloadavg())

    benchmark = (recorded_results(base_dir) or {}).get("benchmark", {})
    old_seed = benchmark.get("seed", 0)
    old_scenes = args.test_scenes or benchmark.get("num_scenes", DEFAULT_TEST_SCENES)
    splits = held_out_splits(args.test_scenes or DEFAULT_TEST_SCENES, settings.seed, old_scenes, old_seed)
    base_pipe = load_pipeline(base_dir)
    num_queries = base_pipe.model.config.num_queries
    m_values = sorted({1, 2, 4, 8, 16, 32, num_queries})  # the demo's budgets
    answers = {"before": {domain: sweep_answers(base_pipe, records, m_values, args.batch_size) for domain, records in splits.items()}}
    del base_pipe
    adapted = adapted_pipeline(outcome)
    answers["after"] = {domain: sweep_answers(adapted, records, m_values, args.batch_size) for domain, records in splits.items()}

    adapter_dir, merged_dir = out / "adapter", out / "merged"
    export_folder(outcome.adapter_dir, adapter_dir)
    merge_adapter(base_dir, adapter_dir, work / "merged")
    export_folder(work / "merged", merged_dir)
    accuracy = {
        domain: {phase: {m: accuracy_by_family(rows) for m, rows in answers[phase][domain].items()} for phase in answers}
        for domain in splits
    }
    argv = sys.argv[2:] if sys.argv[1:2] == ["demo"] else sys.argv[1:]
    results: dict[str, Any] = {
        "domain": {"name": NEW_DOMAIN_NAME, "description": NEW_DOMAIN_DESCRIPTION, "extends": EXTENDS,
                   "floors_at_m": NEW_FLOORS_AT_M, "chance": chance_levels()},  # fmt: skip
        "base_model": base_name,
        "recipe": settings.recipe,
        "settings": dataclasses.asdict(settings),
        "command": "mqt-llava demo " + shlex.join(argv),
        "num_queries": num_queries,
        "m_values": m_values,
        "families": {"new": list(NEW_FAMILIES), "old": list(FAMILIES)},
        "splits": {
            "new": _split_info(NEW_TEST_SPLIT, settings.seed, splits["new"], NEW_FAMILIES),
            "old": _split_info(OLD_TEST_SPLIT, old_seed, splits["old"], FAMILIES),
        },
        "accuracy": accuracy,
        "accuracy_by_axis": {
            phase: {m: accuracy_by_axis(splits["new"], rows) for m, rows in answers[phase]["new"].items()} for phase in answers
        },
        "targets": {
            "new_after_misses": curve_misses(accuracy["new"]["after"], num_queries, NEW_FLOORS_AT_M),
            "old_retention_misses": retention_misses(accuracy["old"]["before"], accuracy["old"]["after"]),
        },
        "training": {
            "seconds": outcome.seconds,
            "cpu_seconds": outcome.cpu_seconds,
            "peak_memory_mb": outcome.peak_memory_mb,
            "losses": outcome.losses,
            "machine": machine_description(),
            "load_average": load_average,
            "train_records": {"new_domain": data.num_new, "old_domain_replay": data.num_replay},
        },
        "sizes": {
            "adapter_bytes": _folder_bytes(adapter_dir, "*.safetensors"),
            "base_bytes": _folder_bytes(base_dir, "*.safetensors"),
        },
    }
    write_cards(results, base_name, adapter_dir, merged_dir)
    results["reload"] = reload_check(outcome, base_dir, adapter_dir, merged_dir, splits["new"],
                                     answers["after"]["new"], out / "check", args.batch_size)  # fmt: skip
    results["wall_time_s"] = round(time.perf_counter() - started, 1)
    write_results(results, out / "results.json")
    report = format_report(results)
    (out / "table.md").write_text(report + "\n")
    plot_curves(results, out / "curves.png")
    sys.stdout.write(f"\n{report}\n\nwrote {out / 'results.json'}, {out / 'table.md'}, {out / 'curves.png'}, "
                     f"{adapter_dir} and {merged_dir} in {results['wall_time_s']:.0f} s\n")  # fmt: skip
    return 0


__all__ = ["adapted_pipeline", "lora_settings", "reload_check", "run_lora", "sweep_answers"]
