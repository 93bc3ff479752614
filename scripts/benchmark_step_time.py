"""Training step time versus the visual-token budget m, through the real SFT pipeline (collator, forward, backward,
optimizer step), on a small randomly initialised model.

    python scripts/benchmark_step_time.py --out /tmp/step_time   # writes step_time.json, prints a Markdown table

Each setting trains the same model on the same toy data (stage-2 parts: query transformer + language model) with a
fixed m or the `paper` distribution; the step time is the median over the measured steps, after warm-up steps.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from transformers import TrainerCallback

from mqt_llava.tools.testing import save_tiny_model
from mqt_llava.tools.toy_data import write_toy_dataset
from mqt_llava.training.arguments import parse_recipe
from mqt_llava.training.sft import build_trainer

logger = logging.getLogger(__name__)

# A small config where the visual tokens dominate the sequence at m = M (about 30 text tokens per example).
SMALL_CONFIG = {
    "num_queries": 256,
    "query_num_heads": 4,
    "vision_config": {
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "image_size": 64,
        "patch_size": 8,
    },
    "text_config": {
        "hidden_size": 256,
        "intermediate_size": 688,
        "num_hidden_layers": 4,
        "num_attention_heads": 8,
        "num_key_value_heads": 8,
    },
}
SETTINGS = ("fixed:2", "fixed:16", "fixed:64", "fixed:max", "paper")


class StepTimer(TrainerCallback):
    """Wall time of every optimizer step (collation of the step's batches included)."""

    def __init__(self) -> None:
        self.durations: list[float] = []
        self._last = None

    def on_step_begin(self, args, state, control, **kwargs):
        if self._last is None:
            self._last = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        now = time.perf_counter()
        self.durations.append(now - self._last)
        self._last = now


def time_setting(
    model_dir: Path,
    data: Path,
    images: Path,
    out_dir: Path,
    distribution: str,
    steps: int,
    warmup: int,
    batch_size: int,
) -> dict:
    """Trains `warmup + steps` steps with m drawn from `distribution`; returns its median step time and mean tokens."""
    overrides = [
        "--model_name_or_path",
        str(model_dir),
        "--data_path",
        str(data),
        "--image_folder",
        str(images),
        "--output_dir",
        str(out_dir),
        "--num_visual_tokens_distribution",
        distribution,
        "--max_steps",
        str(warmup + steps),
        "--per_device_train_batch_size",
        str(batch_size),
        "--gradient_accumulation_steps",
        "1",
        "--learning_rate",
        "1e-4",
        "--warmup_steps",
        "0",
        "--dtype",
        "float32",
        "--bf16",
        "false",
        "--use_cpu",
        "true",
        "--activation_checkpointing",
        "false",
        "--dataloader_num_workers",
        "0",
        "--save_strategy",
        "no",
        "--logging_steps",
        "1000",
        "--report_to",
        "none",
        "--disable_tqdm",
        "true",
    ]
    trainer = build_trainer(*parse_recipe("stage2_instruct", overrides))
    timer, lengths = StepTimer(), []
    trainer.add_callback(timer)
    trainer.model.model.register_forward_pre_hook(
        lambda module, args, kwargs: lengths.append(float(kwargs["attention_mask"].sum(dim=1).float().mean())),
        with_kwargs=True,
    )
    trainer.train()
    distribution_mean = trainer.data_collator.distribution.mean
    return {
        "distribution": distribution,
        "mean_m": distribution_mean,
        "mean_tokens_per_example": statistics.fmean(lengths[warmup:]),
        "median_step_s": statistics.median(timer.durations[warmup:]),
    }


def run_benchmark(
    out_dir: Path, steps: int = 20, warmup: int = 3, batch_size: int = 4, threads: int = 1, rounds: int = 2
) -> list[dict]:
    """Times every setting of `SETTINGS` in `rounds` interleaved rounds (the fastest round counts, which filters out
    other load on the machine); returns rows with step times and token counts relative to fixed m = M."""
    torch.set_num_threads(threads)
    model_dir = save_tiny_model(out_dir / "model", **SMALL_CONFIG)
    data, images = write_toy_dataset(out_dir / "data", num_records=8, image_size=64)
    rows: dict[str, dict] = {}
    for _ in range(rounds):
        for spec in SETTINGS:
            row = time_setting(model_dir, data, images, out_dir / "run", spec, steps, warmup, batch_size)
            if spec not in rows or row["median_step_s"] < rows[spec]["median_step_s"]:
                rows[spec] = row
    reference = rows["fixed:max"]
    for row in rows.values():
        row["time_vs_M"] = row["median_step_s"] / reference["median_step_s"]
        row["tokens_vs_M"] = row["mean_tokens_per_example"] / reference["mean_tokens_per_example"]
    return list(rows.values())


def linear_fit(rows: list[dict]) -> dict:
    """Least-squares fit of step time = fixed + per_token x tokens per example over the fixed-m rows."""
    fixed_rows = [row for row in rows if row["distribution"].startswith("fixed:")]
    tokens = torch.tensor([row["mean_tokens_per_example"] for row in fixed_rows], dtype=torch.float64)
    times = torch.tensor([row["median_step_s"] for row in fixed_rows], dtype=torch.float64)
    design = torch.stack([torch.ones_like(tokens), tokens], dim=1)
    fixed, per_token = torch.linalg.lstsq(design, times[:, None]).solution.flatten().tolist()
    residual = times - (fixed + per_token * tokens)
    r_squared = 1 - float(residual.pow(2).sum() / (times - times.mean()).pow(2).sum())
    return {"fixed_s": fixed, "per_token_s": per_token, "r_squared": r_squared}


def markdown_table(rows: list[dict]) -> str:
    lines = [
        "| m per batch | mean m | tokens / example | step time (ms) | time vs m = M | tokens vs m = M |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['distribution']} | {row['mean_m']:.0f} | {row['mean_tokens_per_example']:.0f} | "
            f"{1000 * row['median_step_s']:.0f} | {row['time_vs_M']:.2f} | {row['tokens_vs_M']:.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=None, help="folder for the model, data and step_time.json")
    parser.add_argument("--steps", type=int, default=20, help="measured steps per setting")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per setting")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved repetitions (the fastest counts)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    out_dir = args.out or Path(tempfile.mkdtemp(prefix="mqt-step-time-"))
    rows = run_benchmark(out_dir, args.steps, args.warmup, args.batch_size, args.threads, args.rounds)
    fit = linear_fit(rows)
    (out_dir / "step_time.json").write_text(json.dumps({"rows": rows, "linear_fit": fit}, indent=2))
    sys.stdout.write(markdown_table(rows) + "\n")
    sys.stdout.write(
        f"\nstep time ~ {1000 * fit['fixed_s']:.0f} ms + {1000 * fit['per_token_s']:.2f} ms x tokens per example "
        f"(R^2 = {fit['r_squared']:.3f} over the fixed-m rows)\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
