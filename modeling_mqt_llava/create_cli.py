"""`mqt-llava create`: write a randomly initialised model folder (for trying the tools without real weights)."""

from __future__ import annotations

import argparse
import logging

from .testing import save_tiny_model

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="folder to write")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-queries", type=int, default=16, help="M, the number of queries (a square number)")


def run(args: argparse.Namespace) -> int:
    folder = save_tiny_model(args.out, seed=args.seed, num_queries=args.num_queries)
    logger.info("wrote a randomly initialised tiny MQT-LLaVA (M = %d) to %s", args.num_queries, folder)
    return 0
