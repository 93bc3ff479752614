"""`mqt-llava train RECIPE.yaml [--field value ...]`: run a training recipe, with command-line overrides.

The recipe is read by TRL's `TrlParser` into (MatryoshkaArguments, SFTConfig, ModelConfig); any field of the three
can be overridden after the recipe, e.g. `mqt-llava train training/recipes/lora.yaml --max_steps 100 --lora_r 16`.
Multi-GPU: `accelerate launch --config_file training/launch/ddp.yaml -m mqt_llava train RECIPE.yaml`.
"""

from __future__ import annotations

import argparse
import logging
import sys

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "recipe",
        help="a recipe YAML, a shipped recipe name (stage1_align, stage2_instruct, lora, qlora), or 'none' to give "
        "every field inline",
    )
    parser.add_argument(
        "overrides",
        nargs=argparse.REMAINDER,
        help="--field value pairs overriding the recipe (any MatryoshkaArguments / SFTConfig / ModelConfig field; "
        "--help-fields lists them)",
    )


def run(args: argparse.Namespace) -> int:
    from .arguments import make_parser, parse_recipe
    from .data import DataError
    from .sft import train

    if "--help-fields" in args.overrides:
        make_parser().print_help(sys.stdout)
        return 0
    recipe = None if args.recipe == "none" else args.recipe
    try:
        matryoshka_args, training_args, model_args = parse_recipe(recipe, args.overrides)
        trainer = train(matryoshka_args, training_args, model_args)
    except DataError as error:
        logger.error("%s", error)
        return 1
    trainer.end()
    return 0
