"""`mqt-llava create`: write a new model folder.

With `--vision-tower` and `--language-model`: the stage-1 starting point (pretrained towers, fresh query
transformer). Without them: a randomly initialised tiny model, for trying the tools without real weights.
"""

from __future__ import annotations

import argparse
import logging

from mqt_llava.tools.assemble import assemble_from_pretrained
from mqt_llava.tools.testing import save_tiny_model

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="folder to write")
    parser.add_argument("--vision-tower", help="pretrained CLIP / SigLIP folder (e.g. clip-vit-large-patch14-336)")
    parser.add_argument("--language-model", help="pretrained decoder folder (e.g. vicuna-7b-v1.5)")
    parser.add_argument("--tokenizer", help="tokenizer folder (default: the language model's)")
    parser.add_argument("--num-queries", type=int, default=None, help="M, a square number (default 256; tiny: 16)")
    parser.add_argument("--query-num-heads", type=int, default=16)
    parser.add_argument("--query-key-source", choices=["position", "content"], default="position")
    parser.add_argument("--vision-feature-layer", type=int, default=-2)
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    if (args.vision_tower is None) != (args.language_model is None):
        raise ValueError("--vision-tower and --language-model go together")
    if args.vision_tower is None:
        num_queries = args.num_queries or 16
        folder = save_tiny_model(args.out, seed=args.seed, num_queries=num_queries)
        logger.info("wrote a randomly initialised tiny MQT-LLaVA (M = %d) to %s", num_queries, folder)
        return 0
    model, processor = assemble_from_pretrained(
        args.vision_tower,
        args.language_model,
        args.tokenizer,
        num_queries=args.num_queries or 256,
        query_num_heads=args.query_num_heads,
        query_key_source=args.query_key_source,
        vision_feature_layer=args.vision_feature_layer,
        seed=args.seed,
    )
    model.save_pretrained(args.out)
    processor.save_pretrained(args.out)
    logger.info("wrote %s: pretrained vision tower and language model, fresh query transformer", args.out)
    return 0
