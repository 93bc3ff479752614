"""The `mqt-llava` console script.

Each subcommand lives in its own module exposing `add_arguments(parser)` and `run(args) -> int`; modules are
imported only when their subcommand runs, so `mqt-llava --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("evaluation.demo", "Show one model serving every token budget on Shapes-VQA (the main job)."),
    "generate": ("modeling_mqt_llava.generate_cli", "Answer a question about an image, streaming the answer."),
    "create": ("modeling_mqt_llava.create_cli", "Write a randomly initialised model folder from a preset."),
    "train": ("training.cli", "Train with a TRL SFT recipe (stage 1, stage 2, LoRA, QLoRA)."),
    "merge": ("training.merge", "Merge a LoRA adapter into its base and write a self-contained Hub folder."),
    "convert": ("mqt_llava_tools.convert_original", "Convert the released MQT-LLaVA checkpoint to this format."),
    "flops": ("evaluation.flops", "Count forward FLOPs per part for each token budget."),
    "bench": ("evaluation.bench", "Measure CPU latency and memory for each token budget."),
    "eval": ("evaluation.runner", "Run and score a benchmark at several token budgets (resumable)."),
    "push": ("model_cards.push", "Upload a model folder to the Hugging Face Hub."),
}


def _top_level_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mqt-llava",
        description="MQT-LLaVA: one vision-language model, any number of visual tokens.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="subcommands:\n"
        + "\n".join(f"  {name:<10} {help_text}" for name, (_, help_text) in SUBCOMMANDS.items())
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
    module = importlib.import_module(SUBCOMMANDS[name][0])
    parser = argparse.ArgumentParser(prog=f"mqt-llava {name}", description=SUBCOMMANDS[name][1])
    module.add_arguments(parser)
    args = parser.parse_args(rest)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(module.run(args) or 0)
    except (ValueError, FileNotFoundError) as error:
        parser.exit(2, f"mqt-llava {name}: error: {error}\n")


if __name__ == "__main__":
    sys.exit(main())
