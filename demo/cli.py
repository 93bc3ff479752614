"""`mqt-llava demo`: one tiny MQT-LLaVA answering Shapes-VQA with every token budget m, on a CPU.

Default: loads the shipped model (`evaluation/assets/mqt-llava-tiny`, made by `mqt-llava demo --train`) through
`pipeline("image-text-to-text", trust_remote_code=True)`, generates the Shapes-VQA test split the model's card names,
answers every question at m in {1, 2, 4, 8, 16, 32, M}, prints the accuracy/FLOPs table, writes `results.json`,
`results.png` (accuracy and FLOPs against m) and `attention.png` (where the visual tokens look on one test image) to
`--out`, and ends with one example answered at several m.

`--train` first reproduces the model from scratch (`train_pipeline`), exports it as a Hub folder with
its model card to `OUT/mqt-llava-tiny`, then evaluates it the same way; `--baselines` adds models trained with a
fixed m (M/16, M/4 and M) on the same number of samples.

`--lora [--qlora]` fine-tunes the model on a new domain with an adapter instead (`lora`) and reports both domains
before and after.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import platform
import resource
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mqt_llava.evaluation import ASSETS_DIR
from mqt_llava.evaluation.shapes_vqa import DEFAULT_TEST_SCENES

if TYPE_CHECKING:
    from transformers import Pipeline

logger = logging.getLogger(__name__)

SHIPPED_MODEL = ASSETS_DIR / "mqt-llava-tiny"
EXAMPLE_BUDGETS = (1, 4, 16)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("mqt-llava-demo"), help="output folder (default: %(default)s)")
    parser.add_argument("--train", action="store_true", help="train the model from scratch first (about --minutes)")
    parser.add_argument("--minutes", type=float, default=None,
                        help="with --train: scale the default training budget (30 minutes on 2 CPU cores) to this")  # fmt: skip
    parser.add_argument("--baselines", action="store_true", help="with --train: also train fixed-m models (M/16, M/4, M)")
    parser.add_argument("--model", type=Path, default=None, help=f"model folder to evaluate (default: {SHIPPED_MODEL})")
    parser.add_argument("--seed", type=int, default=None, help="seed of training and of the test split (default: 0, "
                        "or the one the model's card records)")  # fmt: skip
    parser.add_argument("--test-scenes", type=int, default=None,
                        help=f"test scenes (about 4.4 questions each; default: {DEFAULT_TEST_SCENES} or the card's)")  # fmt: skip
    parser.add_argument("--train-scenes", type=int, default=None, help="with --train: training scenes (default "
                        "10000); with --lora: new-domain training scenes (default 3000)")  # fmt: skip
    parser.add_argument("--batch-size", type=int, default=32, help="questions per pipeline batch")
    parser.add_argument("--lora", action="store_true", help="fine-tune the model on a new domain (spatial questions) "
                        "with a LoRA adapter and report both domains before and after (docs/lora.md)")  # fmt: skip
    parser.add_argument("--qlora", action="store_true", help="with --lora: train through the qlora recipe (4-bit)")
    parser.add_argument("--lora-steps", type=int, default=None, help="with --lora: adapter training steps (default 600)")


def machine_description() -> str:
    """CPU model, core count and torch threads of this machine, for the model card."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} with {torch.get_num_threads()} threads, {platform.system()}"


def _check_args(args: argparse.Namespace) -> None:
    if not args.train and (args.minutes is not None or args.baselines):
        raise ValueError("--minutes and --baselines only apply with --train")
    if not (args.train or args.lora) and args.train_scenes is not None:
        raise ValueError("--train-scenes only applies with --train or --lora")
    if not args.lora and (args.qlora or args.lora_steps is not None):
        raise ValueError("--qlora and --lora-steps only apply with --lora")
    if args.lora and args.train:
        raise ValueError("--lora fine-tunes an existing model (--model, default the shipped one); drop --train")
    if args.train and args.model is not None:
        raise ValueError("--model picks a folder to evaluate; with --train the freshly trained model is evaluated")
    for name in ("test_scenes", "train_scenes", "batch_size", "lora_steps"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be a positive integer, got {value}")


def _train(args: argparse.Namespace, out: Path):
    from .train_pipeline import DEFAULT_MINUTES, TrainSettings, train_demo

    settings = TrainSettings(seed=args.seed if args.seed is not None else 0)
    if args.train_scenes is not None:
        settings = dataclasses.replace(settings, num_train_scenes=args.train_scenes)
    settings = settings.scaled(args.minutes if args.minutes is not None else DEFAULT_MINUTES)
    num_queries = _num_queries()
    baselines = (num_queries // 16, num_queries // 4, num_queries) if args.baselines else ()
    return settings, train_demo(out / "work", settings, baselines=baselines)


def export_folder(trained_dir: Path, model_dir: Path) -> None:
    """Copies a trained folder to `model_dir` as a Hub folder: the trainer's pickled arguments are left out and
    every file is made world-readable (`save_pretrained` writes the weights with mode 0600)."""
    shutil.rmtree(model_dir, ignore_errors=True)
    shutil.copytree(trained_dir, model_dir, ignore=shutil.ignore_patterns("training_args.bin", "checkpoint-*"))
    for path in model_dir.iterdir():
        path.chmod(0o644)


def _num_queries() -> int:
    from mqt_llava.tools.presets import preset_config

    from .model_setup import DEMO_PRESET

    return preset_config(DEMO_PRESET).num_queries


def _example(pipe, record, num_queries: int) -> dict[str, Any]:
    from .sweep import answer_questions

    question = next((q for q in record.questions if q.family == "count"), record.questions[-1])
    single = dataclasses.replace(record, questions=(question,))
    predictions = {}
    for m in (*EXAMPLE_BUDGETS, num_queries):
        predictions[str(m)] = answer_questions(pipe, [single], m, batch_size=1)[0][2]
    return {"image": record.image_file, "question": question.text, "answer": question.answer, "predictions": predictions}


def peak_memory_mb() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def evaluate(
    pipe: Pipeline, model_dir: Path, seed: int, num_scenes: int, batch_size: int, baseline_dirs: dict[int, Path]
) -> dict[str, Any]:
    """Sweeps m on a freshly generated test split through `pipe` (the pipeline of `model_dir`); returns the
    `results.json` content (without timings). Fixed-m baselines are evaluated at their own m."""
    from mqt_llava.evaluation.shapes_vqa import FAMILIES, build_split

    from .sweep import count_flops, load_pipeline, sweep
    from .train_pipeline import STAGE2

    records = build_split("test", num_scenes, seed)
    num_queries = pipe.model.config.num_queries
    m_values = sorted({1, 2, 4, 8, 16, 32, num_queries})
    trained_m = STAGE2.distribution
    models = [{"name": "matryoshka", "trained_m": trained_m, "accuracy": sweep(pipe, records, m_values, batch_size)}]
    for m, folder in baseline_dirs.items():
        accuracy = sweep(load_pipeline(folder), records, [m], batch_size)
        models.append({"name": f"fixed-m{m}", "trained_m": f"fixed:{m}", "accuracy": accuracy})
    num_questions = {family: sum(q.family == family for r in records for q in r.questions) for family in FAMILIES}
    return {
        "benchmark": {
            "name": "shapes_vqa",
            "split": "test",
            "seed": seed,
            "num_scenes": num_scenes,
            "num_questions": num_questions,
        },
        "model": str(model_dir),
        "num_queries": num_queries,
        "m_values": m_values,
        "families": list(FAMILIES),
        "flops": count_flops(pipe, records[0], m_values),
        "models": models,
        "example": _example(pipe, records[0], num_queries),
    }


def _training_record(settings, outcome, results: dict[str, Any]) -> dict[str, str]:
    """Provenance for the model card: command, seed, wall time, machine, budget."""
    argv = sys.argv[2:] if sys.argv[1:2] == ["demo"] else sys.argv[1:]
    return {
        "command": "mqt-llava demo " + shlex.join(argv),
        "seed": str(settings.seed),
        "wall time": f"{results['wall_time_s'] / 60:.1f} minutes in all, training "
        f"{sum(outcome.seconds.values()) / 60:.1f} ({', '.join(f'{k} {v:.0f} s' for k, v in outcome.seconds.items())})",
        "machine": machine_description(),
        "peak memory": f"{results['peak_memory_mb']:.0f} MiB",
        "budget": f"vision pre-training {settings.vision_steps} steps (batch {settings.vision_batch_size}), stage 1 "
        f"{settings.stage1.max_steps} steps at m ~ {settings.stage1.distribution}, stage 2 {settings.stage2.max_steps} steps "
        f"at m ~ {settings.stage2.distribution}, one m per {settings.stage2.draw_per} (batch {settings.stage2.batch_size}), "
        f"{settings.num_train_scenes} training scenes",
        "vision tower patch accuracy (held out)": ", ".join(f"{k} {100 * v:.1f}%" for k, v in outcome.vision_accuracy.items()),
    }


def _summary(results: dict[str, Any], out: Path, recorded: dict[str, Any] | None) -> str:
    from .report import format_table

    benchmark, example = results["benchmark"], results["example"]
    text = (
        f"\nShapes-VQA test split (seed {benchmark['seed']}, {benchmark['num_scenes']} scenes), accuracy in % per "
        f"family, model {results['model']}\n\n{format_table(results)}\n\nwrote {out / 'results.json'}, "
        f"{out / 'results.png'} and {out / 'attention.png'} in {results['wall_time_s']:.0f} s\n\nexample: {out / 'shapes_vqa' / example['image']}\n"
        f"  Q: {example['question']}  (correct: {example['answer']})\n"
        + "".join(f"  m={m:>3}: {answer}\n" for m, answer in example["predictions"].items())
    )
    if recorded is not None and recorded.get("benchmark") == benchmark:
        accuracy = results["models"][0]["accuracy"]
        gaps = [abs(accuracy[m][f] - value) for m, row in recorded["accuracy"].items() for f, value in row.items()]
        text += f"largest difference from the accuracies recorded in the model card: {100 * max(gaps):.1f} points\n"
    return text


def run(args: argparse.Namespace) -> int:
    import torch

    from mqt_llava.evaluation.shapes_vqa import export_split

    from PIL import Image

    from .attention_figure import plot_token_attention
    from .card import recorded_results, write_demo_card
    from .report import plot_results, write_results
    from .sweep import load_pipeline

    _check_args(args)
    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    if args.lora:
        from .lora import run_lora

        return run_lora(args)
    started = time.perf_counter()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    settings = outcome = None
    if args.train:
        settings, outcome = _train(args, out)
        model_dir = out / "mqt-llava-tiny"
        export_folder(outcome.model_dir, model_dir)
    else:
        model_dir = args.model or SHIPPED_MODEL
        if not (model_dir / "config.json").is_file():
            raise FileNotFoundError(f"no model folder at {model_dir} (config.json missing); run `mqt-llava demo --train`")

    recorded = None if args.train else recorded_results(model_dir)
    benchmark = (recorded or {}).get("benchmark", {})
    seed = args.seed if args.seed is not None else benchmark.get("seed", 0)
    num_scenes = args.test_scenes or benchmark.get("num_scenes", DEFAULT_TEST_SCENES)
    export_split(out / "shapes_vqa", "test", num_scenes, seed)
    pipe = load_pipeline(model_dir)
    results = evaluate(pipe, model_dir, seed, num_scenes, args.batch_size, outcome.baseline_dirs if outcome else {})
    results["wall_time_s"] = round(time.perf_counter() - started, 1)
    results["peak_memory_mb"] = round(peak_memory_mb(), 1)
    if outcome is not None:
        results["training_seconds"] = outcome.seconds
        results["vision_patch_accuracy"] = outcome.vision_accuracy
        write_demo_card(model_dir, results, _training_record(settings, outcome, results))
    write_results(results, out / "results.json")
    plot_results(results, out / "results.png")
    with Image.open(out / "shapes_vqa" / results["example"]["image"]) as image:
        plot_token_attention(pipe.model, pipe.processor, image, out / "attention.png")
    sys.stdout.write(_summary(results, out, recorded))
    return 0


__all__ = ["SHIPPED_MODEL", "add_arguments", "evaluate", "export_folder", "machine_description", "peak_memory_mb", "run"]
