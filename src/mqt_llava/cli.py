"""The `mqt-llava` command: one subcommand per job.

Each subcommand is a module with `add_arguments(parser)` and `run(args) -> int`. A subcommand's module is imported
only when that subcommand runs (most of them import torch), so `mqt-llava --help` answers at once.
"""

from __future__ import annotations

import argparse
import logging
import sys
from types import ModuleType

SUBCOMMANDS: dict[str, str] = {
    "demo": "Show one model serving every token budget on Shapes-VQA (the main job).",
    "generate": "Answer a question about an image, streaming the answer.",
    "create": "Write a new model folder: pretrained towers with a fresh query transformer, or a tiny random model.",
    "train": "Train with a TRL SFT recipe (stage 1, stage 2, LoRA, QLoRA).",
    "merge": "Merge a LoRA adapter into its base and write a self-contained Hub folder.",
    "convert": "Convert the released MQT-LLaVA checkpoint to this format.",
    "flops": "Count forward FLOPs per part for each token budget.",
    "bench": "Measure CPU latency and memory for each token budget.",
    "eval": "Run and score a benchmark at several token budgets (resumable).",
    "calibrate": 'Choose the confidence threshold of num_visual_tokens="auto" on a validation split.',
    "push": "Upload a model folder to the Hugging Face Hub.",
    "app": "Serve the interactive web demo (Gradio): drag the token budget, see answer, cost and attention.",
}


def load_subcommand(name: str) -> ModuleType:
    """The module that implements subcommand `name` (one of `SUBCOMMANDS`)."""
    match name:
        case "demo":
            from mqt_llava.demo import cli as module
        case "generate":
            from mqt_llava import generate as module
        case "create":
            from mqt_llava.tools import create as module
        case "train":
            from mqt_llava.training import cli as module
        case "merge":
            from mqt_llava.training import merge as module
        case "convert":
            from mqt_llava.convert import convert_original as module
        case "flops":
            from mqt_llava.evaluation import flops as module
        case "bench":
            from mqt_llava.evaluation import bench as module
        case "eval":
            from mqt_llava.evaluation import runner as module
        case "calibrate":
            from mqt_llava.evaluation.auto_budget import cli as module
        case "push":
            from mqt_llava.model_cards import push as module
        case "app":
            from mqt_llava.app import cli as module
        case _:
            raise ValueError(f"unknown subcommand {name!r}; choose one of {sorted(SUBCOMMANDS)}")
    return module


def _top_level_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mqt-llava",
        description="MQT-LLaVA: one vision-language model, any number of visual tokens.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="subcommands:\n"
        + "\n".join(f"  {name:<10} {help_text}" for name, help_text in SUBCOMMANDS.items())
        + "\n\nRun `mqt-llava SUBCOMMAND --help` for its options.",
    )
    parser.add_argument("subcommand", choices=sorted(SUBCOMMANDS), metavar="SUBCOMMAND")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `mqt-llava` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in SUBCOMMANDS:
        _top_level_parser().parse_args(argv or ["--help"])
        return 2
    name, rest = argv[0], argv[1:]
    module = load_subcommand(name)
    parser = argparse.ArgumentParser(prog=f"mqt-llava {name}", description=SUBCOMMANDS[name])
    module.add_arguments(parser)
    args = parser.parse_args(rest)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(module.run(args) or 0)
    except (ValueError, FileNotFoundError) as error:
        parser.exit(2, f"mqt-llava {name}: error: {error}\n")


if __name__ == "__main__":
    sys.exit(main())
