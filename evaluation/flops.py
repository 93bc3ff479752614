"""`mqt-llava flops`: forward FLOPs per part for each token budget, against a LLaVA-1.5-shaped peer.

For each m the MQT-LLaVA model is counted part by part (vision tower, query transformer, language-model prefill of
the prompt, one decode step) on fake tensors, then the same prompt through the LLaVA peer (same vision tower and
language model, MLP projector, one token per grid feature: 576 for CLIP-L/336). With the paper's 7B shape, each total
sits next to the value read from the paper's Figure 1. Writes `OUT/flops.json` and `OUT/flops.png`.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from transformers import LlavaForConditionalGeneration

from mqt_llava.evaluation.cost.flop_counting import PartFlops, count_on_fake_tensors, count_parts
from mqt_llava.evaluation.cost.options import DEFAULT_PROMPT_TOKENS, budgets_for, int_list, markdown_table
from mqt_llava.evaluation.cost.peer import grid_features, llava_peer_config
from mqt_llava.evaluation.cost.plots import plot_flops
from mqt_llava.modeling_mqt_llava import MqtLlavaConfig, MqtLlavaForConditionalGeneration
from mqt_llava.tools.presets import PRESETS, preset_config

__all__ = ["PAPER_LLAVA_TFLOPS", "PAPER_TFLOPS", "add_arguments", "flops_report", "format_table", "run"]

logger = logging.getLogger(__name__)

# Read off the paper's Figure 1 (approximate): MQT-LLaVA-7B TFLOPs per token budget, and LLaVA-1.5-7B at 576 tokens.
PAPER_TFLOPS = {8: 1.24, 16: 1.34, 36: 1.56, 64: 1.98, 144: 2.83, 256: 4.52}
PAPER_LLAVA_TFLOPS = 8.75

ASSUMPTIONS = (
    "one image per prompt, batch size {batch_size}, {prompt_tokens} text tokens around the image",
    "a multiply-add counts as 2 FLOPs; element-wise work, norms and softmax are not counted",
    "causal attention: only the query-key pairs its mask keeps; vision and query-transformer attention: in full",
    "prefill = decoder over every prompt position + LM head on the last position (what generate runs)",
    "total = vision tower + projector + prefill; the decode step (one more token on the prompt's cache) is separate",
    "the vision tower runs all its layers (as transformers' CLIP does) although features come from layer -2",
)


def matches_paper_shape(config: MqtLlavaConfig) -> bool:
    """Whether `config` has the paper's 7B shape (CLIP-L/336, 256 queries, Vicuna-7B), so Figure 1 applies."""
    paper = preset_config("mqt-llava-7b")
    vision_keys = ("hidden_size", "intermediate_size", "num_hidden_layers", "image_size", "patch_size")
    text_keys = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_key_value_heads")
    return (
        config.num_queries == paper.num_queries
        and all(getattr(config.vision_config, k) == getattr(paper.vision_config, k) for k in vision_keys)
        and all(getattr(config.text_config, k) == getattr(paper.text_config, k) for k in text_keys)
    )


def _parts(flops: PartFlops, projector_name: str) -> dict[str, int]:
    return {
        "vision_tower": flops.vision_tower,
        projector_name: flops.projector,
        "prefill": flops.prefill,
        "decode_step": flops.decode_step,
        "total": flops.total,
    }


def flops_report(
    config: MqtLlavaConfig, prompt_tokens: int, budgets: list[int], batch_size: int = 1, source: str = ""
) -> dict[str, Any]:
    """Counts every budget and the LLaVA peer; returns the `flops.json` document."""
    image_size = config.vision_config.image_size

    def count_all_budgets(model: MqtLlavaForConditionalGeneration) -> dict[int, PartFlops]:
        counts = {}
        for m in budgets:
            counts[m] = count_parts(
                model,
                image_size=image_size,
                prompt_tokens=prompt_tokens,
                num_visual_tokens=m,
                image_kwargs={"num_visual_tokens": m},
                batch_size=batch_size,
            )
            logger.info("m = %d: %.4g TFLOPs", m, counts[m].total / 1e12)
        return counts

    mqt = count_on_fake_tensors(lambda: MqtLlavaForConditionalGeneration(config), count_all_budgets)
    peer_tokens = grid_features(config)
    peer = count_on_fake_tensors(
        lambda: LlavaForConditionalGeneration(llava_peer_config(config)),
        lambda model: count_parts(
            model,
            image_size=image_size,
            prompt_tokens=prompt_tokens,
            num_visual_tokens=peer_tokens,
            batch_size=batch_size,
        ),
    )
    logger.info("LLaVA peer (%d tokens): %.4g TFLOPs", peer_tokens, peer.total / 1e12)
    paper = matches_paper_shape(config) and batch_size == 1
    rows = []
    for m, flops in mqt.items():
        reference = PAPER_TFLOPS.get(m) if paper else None
        rows.append(
            {
                "num_visual_tokens": m,
                "sequence_tokens": prompt_tokens + m,
                "flops": _parts(flops, "query_transformer"),
                "tflops": flops.total / 1e12,
                "llava_over_this": {
                    "whole_model": peer.total / flops.total,
                    "language_model": peer.prefill / flops.prefill,
                },
                "paper_tflops": reference,
                "relative_error_vs_paper": None if reference is None else flops.total / 1e12 / reference - 1,
                "paper_llava_over_this": None if reference is None else PAPER_LLAVA_TFLOPS / reference,
            }
        )
    peer_reference = PAPER_LLAVA_TFLOPS if paper else None
    return {
        "model": source,
        "prompt_tokens": prompt_tokens,
        "batch_size": batch_size,
        "assumptions": [a.format(batch_size=batch_size, prompt_tokens=prompt_tokens) for a in ASSUMPTIONS],
        "paper_reference": "MQT-LLaVA paper, Figure 1 (values read off the plot)" if paper else None,
        "mqt_llava": rows,
        "llava": {
            "num_visual_tokens": peer_tokens,
            "sequence_tokens": prompt_tokens + peer_tokens,
            "flops": _parts(peer, "mlp_projector"),
            "tflops": peer.total / 1e12,
            "paper_tflops": peer_reference,
            "relative_error_vs_paper": None if peer_reference is None else peer.total / 1e12 / peer_reference - 1,
        },
    }


def _optional(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def format_table(report: dict[str, Any]) -> str:
    """The report as a Markdown table (GFLOPs per part, TFLOPs in total), followed by its assumptions."""
    llava = report["llava"]
    entries = [(str(row["num_visual_tokens"]), row) for row in report["mqt_llava"]]
    entries.append((f"LLaVA {llava['num_visual_tokens']}", llava))
    rows = []
    for label, row in entries:
        parts = row["flops"]
        projector = parts.get("query_transformer", parts.get("mlp_projector"))
        ratios = row.get("llava_over_this", {})
        rows.append(
            [label, f"{parts['vision_tower'] / 1e9:.1f}", f"{projector / 1e9:.2f}", f"{parts['prefill'] / 1e9:.1f}"]
            + [f"{parts['decode_step'] / 1e9:.2f}", f"{row['tflops']:.3f}", _optional(row["paper_tflops"], ".2f")]
            + [_optional(row["relative_error_vs_paper"], "+.1%"), _optional(ratios.get("whole_model"), ".2f")]
            + [_optional(ratios.get("language_model"), ".2f"), _optional(row.get("paper_llava_over_this"), ".2f")]
        )
    header = ["m", "vision tower (GFLOPs)", "projector (GFLOPs)", "LM prefill (GFLOPs)", "decode step (GFLOPs)"]
    header += ["total (TFLOPs)", "paper (TFLOPs)", "vs paper", "LLaVA / this, whole", "LLaVA / this, LM only"]
    header += ["paper's LLaVA / this"]
    notes = "\n".join(f"- {assumption}" for assumption in report["assumptions"])
    return "\n".join(markdown_table(header, rows)) + "\nAssumptions:\n" + notes + "\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--preset", choices=sorted(PRESETS), default="mqt-llava-7b", help="Named model shape (default: the paper's 7B)."
    )
    source.add_argument("--model", type=Path, help="A model folder; only its config.json is read.")
    parser.add_argument(
        "--prompt-tokens",
        type=int,
        default=DEFAULT_PROMPT_TOKENS,
        help=f"Text tokens around the image (default {DEFAULT_PROMPT_TOKENS}: the Vicuna v1 prompt with a short "
        "question).",
    )
    parser.add_argument(
        "--num-visual-tokens",
        type=int_list,
        help="Comma-separated budgets m (default: 2,4,8,16,36,64,144,256 up to M, and M).",
    )
    parser.add_argument("--batch-size", type=int, default=1, help="Images (and prompts) per forward pass.")
    parser.add_argument("--out", type=Path, default=Path("runs/flops"), help="Folder for flops.json and flops.png.")


def run(args: argparse.Namespace) -> int:
    if args.model is not None:
        if not (args.model / "config.json").is_file():
            logger.error("%s has no config.json", args.model)
            return 2
        config, source = MqtLlavaConfig.from_pretrained(args.model), str(args.model)
    else:
        config, source = preset_config(args.preset), f"preset:{args.preset}"
    if args.prompt_tokens < 1 or args.batch_size < 1:
        logger.error(
            "--prompt-tokens and --batch-size must be positive, got %d and %d", args.prompt_tokens, args.batch_size
        )
        return 2
    try:
        budgets = budgets_for(config.num_queries, args.num_visual_tokens)
    except ValueError as error:
        logger.error("--num-visual-tokens: %s", error)
        return 2
    report = flops_report(config, args.prompt_tokens, budgets, args.batch_size, source)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "flops.json").write_text(json.dumps(report, indent=2) + "\n")
    plot_flops(report, args.out / "flops.png")
    sys.stdout.write(format_table(report))
    sys.stdout.write(f"\nWrote {args.out / 'flops.json'} and {args.out / 'flops.png'}\n")
    return 0
