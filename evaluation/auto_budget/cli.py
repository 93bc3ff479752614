"""`mqt-llava calibrate`: choose the confidence threshold of `num_visual_tokens="auto"` and store it in the model.

1. Answers a validation question set at every budget of the schedule, keeping each answer's confidence (Shapes-VQA's
   validation split by default, or a LLaVA-format file with `--data-path` / `--image-folder`).
2. Simulates the automatic budget at every candidate threshold and picks the cheapest one that reaches the target
   accuracy (`--max-accuracy-drop` points below the full budget, default 0.5, or `--target-accuracy`), or the most
   accurate one within `--target-cost` x the full budget's language-model FLOPs.
3. Writes `auto_budget_schedule`, `auto_confidence_rule` and `auto_confidence_threshold` into the folder's
   `generation_config.json` (not with `--dry-run`) and `OUT/calibration.json`.

`--report` then measures, on Shapes-VQA's test split, every fixed budget and real `"auto"` runs at several thresholds
side by side (accuracy against mean forward FLOPs per question, escalation by question family), and the expected
TFLOPs of the paper's 7B shape at the same escalation rates: `OUT/auto_budget.{json,md,png}`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForImageTextToText, AutoProcessor, GenerationConfig

from mqt_llava.evaluation import ASSETS_DIR
from mqt_llava.evaluation.auto_budget.answering import answer_auto, answer_fixed
from mqt_llava.evaluation.auto_budget.calibration import (
    OperatingPoint,
    choose_threshold,
    operating_point,
    sweep_thresholds,
)
from mqt_llava.evaluation.auto_budget.costs import CostCounter, prompt_shapes
from mqt_llava.evaluation.auto_budget.questions import llava_json_items, shapes_vqa_items
from mqt_llava.evaluation.auto_budget.report import comparison_table, escalation_table, estimate_7b, fixed_curve_accuracy, plot
from mqt_llava.evaluation.cost.options import int_list
from mqt_llava.modeling_mqt_llava.adaptive_budget import (
    CONFIDENCE_RULES,
    DEFAULT_CONFIDENCE_RULE,
    DEFAULT_SCHEDULE,
    check_threshold,
    parse_schedule,
)

logger = logging.getLogger(__name__)

DEFAULT_REPORT_THRESHOLDS = (0.5, 0.8, 0.9, 0.95, 0.99, 0.999)
DEFAULT_MAX_ACCURACY_DROP = 0.5  # points: half a 1-point budget, a margin for the validation sample's noise


def _float_list(text: str) -> list[float]:
    try:
        return [check_threshold(float(part)) for part in text.split(",")]
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{text!r}: {error}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, default=ASSETS_DIR / "mqt-llava-tiny", help="model folder (default: the demo model)")
    parser.add_argument("--data-path", type=Path, default=None, help="LLaVA-format JSON of validation questions (default: Shapes-VQA)")
    parser.add_argument("--image-folder", type=Path, default=None, help="images of --data-path")
    parser.add_argument("--scenes", type=int, default=1000, help="Shapes-VQA validation scenes (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="Shapes-VQA validation seed (default: %(default)s)")
    parser.add_argument("--schedule", default=None, help=f"budgets to escalate through (default: the model's, else {DEFAULT_SCHEDULE!r})")
    parser.add_argument("--rule", choices=CONFIDENCE_RULES, default=None, help=f"confidence rule (default: the model's, else {DEFAULT_CONFIDENCE_RULE})")
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--max-accuracy-drop", type=float, default=None, help=f"points below the full budget's accuracy (default: {DEFAULT_MAX_ACCURACY_DROP:g})")
    target.add_argument("--target-accuracy", type=float, default=None, help="accuracy to reach, in percent")
    target.add_argument("--target-cost", type=float, default=None, help="mean LM prefill FLOPs as a fraction of the full budget's")
    parser.add_argument("--dry-run", action="store_true", help="choose and report, but leave the model folder as it is")
    parser.add_argument("--report", action="store_true", help="also measure fixed budgets and thresholds on the test split")
    parser.add_argument("--test-scenes", type=int, default=200, help="with --report: Shapes-VQA test scenes (default: %(default)s)")
    parser.add_argument("--test-seed", type=int, default=0, help="with --report: Shapes-VQA test seed (default: %(default)s)")
    parser.add_argument("--budgets", type=int_list, default=None, help="with --report: fixed budgets (default: 1, 2, 4, ..., M)")
    parser.add_argument("--thresholds", type=_float_list, default=list(DEFAULT_REPORT_THRESHOLDS),
                        help="with --report: thresholds to run (the chosen one is added)")  # fmt: skip
    parser.add_argument("--out", type=Path, default=Path("mqt-llava-calibration"), help="output folder (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=8)


def _check_args(args: argparse.Namespace) -> None:
    if (args.data_path is None) != (args.image_folder is None):
        raise ValueError("--data-path and --image-folder go together")
    for name in ("scenes", "test_scenes", "batch_size", "max_new_tokens"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(args, name)}")
    if args.target_accuracy is not None and not 0 < args.target_accuracy <= 100:
        raise ValueError(f"--target-accuracy is a percentage in (0, 100], got {args.target_accuracy}")
    if args.max_accuracy_drop is not None and args.max_accuracy_drop < 0:
        raise ValueError(f"--max-accuracy-drop must be >= 0 points, got {args.max_accuracy_drop}")
    if args.target_cost is not None and not 0 < args.target_cost <= 1:
        raise ValueError(f"--target-cost is a fraction of the full budget's cost in (0, 1], got {args.target_cost}")


def _point_json(point: OperatingPoint) -> dict[str, Any]:
    return dataclasses.asdict(point)


def _calibrate(args, model, processor, schedule_spec: str, schedule: tuple[int, ...], rule: str, counter: CostCounter):
    if args.data_path is not None:
        items = llava_json_items(args.data_path, args.image_folder)
        source = f"{args.data_path} ({len(items)} questions)"
    else:
        items = shapes_vqa_items("validation", args.scenes, args.seed)
        source = f"Shapes-VQA validation split (seed {args.seed}, {args.scenes} scenes, {len(items)} questions)"
    logger.info("calibrating on %s at budgets %s", source, schedule)
    shapes = prompt_shapes(processor, items)
    per_budget = [answer_fixed(model, processor, items, m, rule, args.batch_size, args.max_new_tokens) for m in schedule]
    full = operating_point(f"m = {schedule[-1]}", items, per_budget[-1], [counter.fixed(s, schedule[-1]) for s in shapes])
    points = sweep_thresholds(items, per_budget, counter, shapes, schedule)
    drop = args.max_accuracy_drop
    if drop is None and args.target_accuracy is None and args.target_cost is None:
        drop = DEFAULT_MAX_ACCURACY_DROP
    target = None if args.target_accuracy is None else args.target_accuracy / 100
    chosen = choose_threshold(points, full, target, drop, args.target_cost)
    document = {
        "model": str(args.model),
        "validation": source,
        "schedule": schedule_spec,
        "budgets": list(schedule),
        "confidence_rule": rule,
        "target": {"max_accuracy_drop": drop, "target_accuracy": target, "target_cost": args.target_cost},
        "full_budget": _point_json(full),
        "chosen": _point_json(chosen),
        "curve": [_point_json(point) for point in points],
    }
    return chosen, document


def _measure(args, model, processor, schedule_spec, schedule, rule, counter, chosen) -> tuple[dict[str, Any], tuple]:
    """Fixed budgets and real "auto" runs on the test split, side by side; the 7B estimate at the chosen threshold.

    Returns the report document and the (fixed, auto, chosen) operating points it was made from."""
    items = shapes_vqa_items("test", args.test_scenes, args.test_seed)
    shapes = prompt_shapes(processor, items)
    num_queries = model.config.num_queries
    budgets = args.budgets or sorted({*(2**k for k in range(num_queries.bit_length()) if 2**k <= num_queries), num_queries})
    fixed = []
    for m in budgets:
        answers = answer_fixed(model, processor, items, m, rule, args.batch_size, args.max_new_tokens)
        fixed.append(operating_point(f"m = {m}", items, answers, [counter.fixed(s, m) for s in shapes]))
    auto, shares = [], None
    for threshold in sorted({*args.thresholds, chosen.threshold}):
        settings = {"auto_budget_schedule": schedule_spec, "auto_confidence_rule": rule, "auto_confidence_threshold": threshold}
        answers = answer_auto(model, processor, items, settings, args.batch_size, args.max_new_tokens)
        costs = [counter.auto(s, schedule[: a.attempts]) for s, a in zip(shapes, answers, strict=True)]
        auto.append(operating_point(f"auto @ {threshold:.4g}", items, answers, costs, threshold))
        logger.info("auto @ %.4g: accuracy %.1f%%", threshold, 100 * auto[-1].accuracy)
        if threshold == chosen.threshold:
            shares = [sum(a.attempts == step + 1 for a in answers) / len(answers) for step in range(len(schedule))]
    picked = next(point for point in auto if point.threshold == chosen.threshold)
    full = max(fixed, key=lambda point: point.total_flops)
    report = {
        "test": f"Shapes-VQA test split (seed {args.test_seed}, {args.test_scenes} scenes, {len(items)} questions)",
        "schedule": schedule_spec,
        "budgets": list(schedule),
        "confidence_rule": rule,
        "fixed": [_point_json(point) for point in fixed],
        "auto": [
            {**_point_json(point), "vs_fixed_curve": point.accuracy - fixed_curve_accuracy(fixed, point.total_flops),
             "language_model_vs_full": point.language_model_flops / full.language_model_flops}
            for point in auto
        ],  # fmt: skip
        "chosen_threshold": chosen.threshold,
        "stop_shares": shares,
        "paper_7b": estimate_7b(schedule_spec, shares),
        "tables": {
            "comparison": comparison_table(fixed, auto),
            "escalation": escalation_table(picked, schedule),
        },
    }
    return report, (fixed, auto, picked)


def _write_report(args, model, processor, schedule_spec, schedule, rule, counter, chosen) -> None:
    report, (fixed, auto, picked) = _measure(args, model, processor, schedule_spec, schedule, rule, counter, chosen)
    plot(fixed, auto, picked, args.out / "auto_budget.png")
    (args.out / "auto_budget.json").write_text(json.dumps(report, indent=1))
    estimate = report["paper_7b"]
    lines = [
        f"# num_visual_tokens=\"auto\" on {report['test']}",
        "",
        f"Schedule {schedule_spec} = {list(schedule)}, rule {rule}, calibrated threshold {chosen.threshold:.4g}.",
        "",
        *report["tables"]["comparison"],
        "",
        f"Where the questions stopped at threshold {chosen.threshold:.4g}:",
        "",
        *report["tables"]["escalation"],
        "",
        f"Paper 7B shape at the same stop shares over {estimate['schedule']}: expected {estimate['expected_tflops']:.2f} "
        f"TFLOPs per question (LLaVA-1.5 in the paper: {estimate['paper_llava_tflops']} TFLOPs).",
        "",
    ]
    (args.out / "auto_budget.md").write_text("\n".join(lines))
    sys.stdout.write("\n".join(lines))


def run(args: argparse.Namespace) -> int:
    _check_args(args)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    processor = AutoProcessor.from_pretrained(args.model, trust_remote_code=True)
    model = AutoModelForImageTextToText.from_pretrained(args.model, trust_remote_code=True, dtype=torch.float32).to(device).eval()
    saved = model.generation_config
    schedule_spec = args.schedule or getattr(saved, "auto_budget_schedule", None) or DEFAULT_SCHEDULE
    schedule = parse_schedule(schedule_spec, model.config.num_queries)
    rule = args.rule or getattr(saved, "auto_confidence_rule", None) or DEFAULT_CONFIDENCE_RULE
    counter = CostCounter(model)
    args.out.mkdir(parents=True, exist_ok=True)
    chosen, document = _calibrate(args, model, processor, schedule_spec, schedule, rule, counter)
    (args.out / "calibration.json").write_text(json.dumps(document, indent=1))
    sys.stdout.write(
        f"threshold {chosen.threshold:.4g}: validation accuracy {100 * chosen.accuracy:.1f}% "
        f"(full budget {100 * document['full_budget']['accuracy']:.1f}%), LM prefill "
        f"{chosen.language_model_flops / document['full_budget']['language_model_flops']:.2f} x the full budget's\n"
    )
    if not args.dry_run:
        config = GenerationConfig.from_pretrained(args.model)
        config.auto_budget_schedule = schedule_spec
        config.auto_confidence_rule = rule
        config.auto_confidence_threshold = float(chosen.threshold)
        config.save_pretrained(args.model)
        sys.stdout.write(f"stored in {args.model / 'generation_config.json'}\n")
    if args.report:
        _write_report(args, model, processor, schedule_spec, schedule, rule, counter, chosen)
    return 0
