"""`mqt-llava convert`: turn the released MQT-LLaVA checkpoint (LLaVA-repository layout) into a Hub-native folder.

    mqt-llava convert --checkpoint MQT-LLaVA-7b --vision-tower clip-vit-large-patch14-336 \
        [--tokenizer vicuna-7b-v1.5] --out mqt-llava-7b-hf [--num-heads 16] [--dtype bf16] [--allow-pickle] [--dry-run]

Everything is checked before anything is written: the original config, every tensor name and shape against the
target model (built on the meta device), the tokenizer. Weights are then streamed one input shard at a time into
sharded safetensors, so a 7B conversion needs about two shards of memory, and the folder is assembled under a
temporary name and renamed at the end: a failed run leaves no half-written output.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm
from transformers import AutoConfig, AutoTokenizer, PreTrainedTokenizerBase
from transformers.dynamic_module_utils import custom_object_save
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
from transformers.utils.hub import convert_file_size_to_int

from mqt_llava.convert.original_checkpoint import CheckpointError, WeightFolder, iter_tensors, read_json
from mqt_llava.convert.original_mapping import (
    IMAGE_TOKEN,
    ConversionPlan,
    build_target_config,
    check_original_config,
    original_num_visual_tokens,
    plan_conversion,
    vision_config_from,
)
from mqt_llava.convert.shard_writer import ShardWriter
from mqt_llava.model_cards import render_model_card
from mqt_llava.modeling_mqt_llava.configuration_mqt_llava import MqtLlavaConfig
from mqt_llava.modeling_mqt_llava.modeling_mqt_llava import MqtLlavaForConditionalGeneration
from mqt_llava.modeling_mqt_llava.query_transformer import sincos_2d
from mqt_llava.processing.build import build_processor
from mqt_llava.processing.processing_mqt_llava import MqtLlavaProcessor

logger = logging.getLogger(__name__)

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
SOURCE_REPO_ID = "gordonhu/MQT-LLaVA-7b"
VISION_REPO_ID = "openai/clip-vit-large-patch14-336"
# A stored sin-cos table further than this from the formula means a different position convention (fp16/bf16
# storage alone stays below ~4e-3).
POSITION_TABLE_TOLERANCE = 1e-2


@dataclass
class VisionComparison:
    """Checkpoint vision tensors compared with the vision-tower folder's copies."""

    compared: int = 0
    differing: list[tuple[str, float]] = field(default_factory=list)

    def report(self) -> None:
        if not self.compared:
            return
        if not self.differing:
            logger.info("the checkpoint's %d vision-tower tensors equal the vision-tower folder's", self.compared)
            return
        worst = max(self.differing, key=lambda item: item[1])
        logger.warning(
            "%d of the checkpoint's %d vision-tower tensors differ from the vision-tower folder's (largest "
            "|difference| %.3g in %s); the checkpoint's copies were used (the original code ignored them and loaded "
            "the vision tower from its own folder)",
            len(self.differing),
            self.compared,
            worst[1],
            worst[0],
        )


@dataclass
class ConversionInputs:
    """Everything read and checked before writing: the plan, the target config, the processor and the sources."""

    plan: ConversionPlan
    config: MqtLlavaConfig
    processor: MqtLlavaProcessor
    checkpoint: WeightFolder
    vision: WeightFolder
    original: dict


def load_tokenizer(folder: Path, vocab_size: int) -> PreTrainedTokenizerBase:
    """The original tokenizer plus `<image>` as a special token with id `vocab_size` (the new embedding row)."""
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
    except (OSError, ValueError, ImportError) as error:
        raise CheckpointError(
            f"cannot load a tokenizer from {folder} ({error}). A folder with only a SentencePiece tokenizer.model "
            "needs `pip install sentencepiece protobuf`."
        ) from error
    if IMAGE_TOKEN in tokenizer.get_vocab():
        raise CheckpointError(f"the tokenizer in {folder} already has {IMAGE_TOKEN}: is it an already converted one?")
    if len(tokenizer) != vocab_size:
        raise CheckpointError(
            f"the tokenizer in {folder} has {len(tokenizer)} tokens but the checkpoint's vocabulary has "
            f"{vocab_size} rows"
        )
    tokenizer.add_special_tokens({"extra_special_tokens": [IMAGE_TOKEN]}, replace_extra_special_tokens=False)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.unk_token  # what LLaVA's Vicuna v1 recipe pads with
    return tokenizer


def _image_settings(vision_folder: Path, image_size: int) -> tuple[list[float], list[float]]:
    """Mean and std of the vision tower's own image processor (CLIP's when it has no preprocessor_config.json)."""
    path = vision_folder / "preprocessor_config.json"
    settings = read_json(path) if path.is_file() else {}
    crop = settings.get("crop_size")
    crop = crop.get("height") if isinstance(crop, dict) else crop
    if crop is not None and crop != image_size:
        logger.warning("%s crops to %s px, the vision tower takes %d px: using %d", path, crop, image_size, image_size)
    return list(settings.get("image_mean", OPENAI_CLIP_MEAN)), list(settings.get("image_std", OPENAI_CLIP_STD))


def prepare(
    checkpoint: Path,
    vision_tower: Path,
    tokenizer: Path | None = None,
    num_heads: int = 16,
    dtype: torch.dtype = torch.bfloat16,
    allow_pickle: bool = False,
) -> ConversionInputs:
    """Reads and checks every input without writing anything; raises `CheckpointError` naming what is wrong."""
    original = read_json(checkpoint / "config.json")
    check_original_config(original, str(checkpoint / "config.json"))
    checkpoint_weights = WeightFolder.open(checkpoint, allow_pickle)
    vision_weights = WeightFolder.open(vision_tower, allow_pickle)
    try:
        vision_config = vision_config_from(AutoConfig.from_pretrained(vision_tower))
    except (OSError, ValueError) as error:
        raise CheckpointError(f"cannot read the vision-tower config in {vision_tower}: {error}") from error
    query = checkpoint_weights.infos.get("model.query_abstractor.query")
    if query is None:
        raise CheckpointError(f"{checkpoint} has no model.query_abstractor.query: it is not an MQT-LLaVA checkpoint")
    num_queries = query.shape[0]
    try:
        config = build_target_config(original, vision_config, num_queries, num_heads, dtype)
    except ValueError as error:
        raise CheckpointError(f"cannot build the target config: {error}") from error
    with torch.device("meta"):
        expected = {name: tuple(t.shape) for name, t in MqtLlavaForConditionalGeneration(config).state_dict().items()}
    plan = plan_conversion(checkpoint_weights.infos.values(), vision_weights.infos.values(), expected)
    image_mean, image_std = _image_settings(vision_tower, vision_config.image_size)
    processor = build_processor(
        load_tokenizer(tokenizer or checkpoint, config.image_token_id),
        image_size=vision_config.image_size,
        num_queries=num_queries,
        num_visual_tokens=original_num_visual_tokens(original, num_queries),
        image_mean=tuple(image_mean),
        image_std=tuple(image_std),
    )
    return ConversionInputs(plan, config, processor, checkpoint_weights, vision_weights, original)


def _check_position_table(table: torch.Tensor) -> None:
    num_queries, width = table.shape
    grid = math.isqrt(num_queries)
    if grid * grid != num_queries or width % 4:
        return
    distance = (table.float() - sincos_2d(width, grid)).abs().max().item()
    if distance > POSITION_TABLE_TOLERANCE:
        logger.warning(
            "the stored query position table is %.3g away from the 2D sin-cos formula; it is kept as stored, but the "
            "checkpoint may follow another position convention",
            distance,
        )


def write_weights(inputs: ConversionInputs, folder: Path, dtype: torch.dtype, max_shard_bytes: int) -> VisionComparison:
    """Streams every planned tensor, one input shard at a time, into safetensors shards in `folder`."""
    by_name = {(mapped.origin, mapped.source.name): mapped for mapped in inputs.plan.tensors}
    comparison = VisionComparison()
    writer = ShardWriter(folder, max_shard_bytes)
    needed = {(mapped.origin, mapped.source.file) for mapped in inputs.plan.tensors}
    sources = [("checkpoint", path) for path in inputs.checkpoint.files] + [
        ("vision tower", path) for path in inputs.vision.files
    ]
    sources = [source for source in sources if source in needed]
    with tqdm(total=len(inputs.plan.tensors), desc="Converting tensors", unit="tensor") as progress:
        for origin, path in sources:
            for name, tensor in iter_tensors(path):
                mapped = by_name.get((origin, name))
                if mapped is None:
                    continue
                if name == "model.query_abstractor.pos_embed":
                    _check_position_table(tensor)
                vision_name = inputs.plan.vision_duplicates.get(name) if origin == "checkpoint" else None
                if vision_name is not None:
                    difference = (tensor.float() - inputs.vision.get(vision_name).float()).abs().max().item()
                    comparison.compared += 1
                    if difference > 0:
                        comparison.differing.append((name, difference))
                for target, output in mapped.apply(tensor).items():
                    target_dtype = dtype if output.is_floating_point() else output.dtype
                    writer.add(target, output.to(dtype=target_dtype, copy=True))
                progress.update(1)
    shards = writer.close()
    logger.info("wrote %.2f GB of weights in %d shard(s)", writer.total_bytes / 1e9, len(shards))
    return comparison


def conversion_notes(inputs: ConversionInputs, source_repo_id: str, vision_repo_id: str, dtype_name: str) -> str:
    """The model card's "Conversion" section: what changed from the original checkpoint and why."""
    config, processor = inputs.config, inputs.processor
    budget = inputs.original.get("num_visual_tokens")
    default = processor.num_visual_tokens or config.num_queries
    said = "" if budget is None else f"The original config says `num_visual_tokens: {json.dumps(budget)}`" + (
        " (in the original code, a random m on every call); " if budget == "second_stage" else "; "
    )
    lines = [
        f"Converted by `mqt-llava convert` from `{source_repo_id}` (LLaVA-repository layout, `llava_llama`) and the "
        f"vision tower `{vision_repo_id}`. Every tensor was renamed and shape-checked against this model; the packed "
        "attention projection was split into q/k/v and the projector transposed into a linear layer.\n",
        f"- **Image token.** `{IMAGE_TOKEN}` was added to the tokenizer as a special token with id "
        f"{config.image_token_id}; the input embedding and `lm_head` grew by one row, set to the mean of the existing "
        "rows. The row is never a training target: image positions hold visual tokens, not the embedding, and never "
        "count in the loss.",
        f"- **Token budget.** {said}this folder defaults to {default} visual tokens per image and "
        "`generation_config.num_visual_tokens` is null. Choose m per call as shown above.",
        f"- **Query transformer.** {config.num_queries} queries, {config.query_num_heads} heads, one cross-attention "
        "layer whose keys are the position table alone (`query_key_source: position`, the released semantics), fixed "
        "2D sin-cos positions kept exactly as stored.",
        f"- **Vision.** Features of hidden layer {config.vision_feature_layer} without the CLS token; images padded to "
        f"a square with the mean colour and resized to {config.vision_config.image_size} px.",
        "- **Prompt.** Vicuna v1, as the original: `USER: <image>\\n... ASSISTANT:` after the system line.",
        f"- **Weights** stored as {dtype_name} safetensors.",
    ]
    return "\n".join(lines)


def write_folder(
    inputs: ConversionInputs,
    out: Path,
    dtype: torch.dtype,
    max_shard_bytes: int,
    source_repo_id: str = SOURCE_REPO_ID,
    vision_repo_id: str = VISION_REPO_ID,
    repo_id: str | None = None,
) -> Path:
    """Writes the converted folder: sharded safetensors, config, generation config, remote code, processor and model
    card. Assembled under `OUT.partial` and renamed to `out` only when complete."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise CheckpointError(f"{out} already exists and is not empty; choose a new --out")
    staging = out.with_name(out.name + ".partial")
    if staging.exists():
        logger.info("removing %s, left by an interrupted conversion", staging)
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    try:
        comparison = write_weights(inputs, staging, dtype, max_shard_bytes)
        with torch.device("meta"):
            model = MqtLlavaForConditionalGeneration(inputs.config)
        model.config.architectures = [type(model).__name__]
        custom_object_save(model, staging, config=model.config)
        model.config.save_pretrained(staging)
        model.generation_config.save_pretrained(staging)
        inputs.processor.save_pretrained(staging)
        dtype_name = str(dtype).removeprefix("torch.")
        card = render_model_card(
            title=f"{source_repo_id.split('/')[-1]} (transformers format)",
            description=(
                f"The released MQT-LLaVA checkpoint [`{source_repo_id}`](https://huggingface.co/{source_repo_id}), "
                "converted into a self-contained transformers model: load it with `trust_remote_code=True`, use it "
                "with `pipeline(\"image-text-to-text\")`, and pick the number of visual tokens per image (1 to "
                f"{inputs.config.num_queries}) at every call."
            ),
            num_queries=inputs.config.num_queries,
            repo_id=repo_id or str(out),
            base_models=[source_repo_id],
            processor_num_visual_tokens=inputs.processor.num_visual_tokens,
            sections=[("Conversion", conversion_notes(inputs, source_repo_id, vision_repo_id, dtype_name))],
        )
        card.save(staging / "README.md")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if out.exists():
        out.rmdir()
    staging.rename(out)
    comparison.report()
    return out


def format_plan(plan: ConversionPlan) -> str:
    """The mapping table of `--dry-run`, one row per target tensor."""
    rows = [("from", "original tensor", "shape", "converted tensor", "shape")] + plan.rows()
    widths = [max(len(row[column]) for row in rows) for column in range(4)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row[:4], widths)) + "  " + row[4] for row in rows]
    return "\n".join(lines) + "\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", type=Path, required=True, help="the released checkpoint folder (llava_llama)")
    parser.add_argument("--vision-tower", type=Path, required=True, help="the CLIP ViT-L/14-336 folder")
    parser.add_argument("--tokenizer", type=Path, default=None, help="tokenizer folder (default: the checkpoint's)")
    parser.add_argument("--out", type=Path, required=True, help="output folder (must not exist or be empty)")
    parser.add_argument("--num-heads", type=int, default=16, help="query-transformer heads (the checkpoint omits it)")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="bf16", help="dtype of the written weights")
    parser.add_argument(
        "--allow-pickle", action="store_true", help="read pickled .bin shards (with torch.load(weights_only=True))"
    )
    parser.add_argument("--dry-run", action="store_true", help="check everything, print the mapping, write nothing")
    parser.add_argument("--max-shard-size", default="5GB", help="largest output shard, e.g. 5GB or 500MB")
    parser.add_argument("--source-repo-id", default=SOURCE_REPO_ID, help="Hub id of the checkpoint (model card)")
    parser.add_argument("--vision-repo-id", default=VISION_REPO_ID, help="Hub id of the vision tower (model card)")
    parser.add_argument("--repo-id", default=None, help="Hub id the folder will be pushed to (card's usage snippet)")


def run(args: argparse.Namespace) -> int:
    dtype = DTYPES[args.dtype]
    try:
        inputs = prepare(args.checkpoint, args.vision_tower, args.tokenizer, args.num_heads, dtype, args.allow_pickle)
        if args.dry_run:
            sys.stdout.write(format_plan(inputs.plan))
            sys.stdout.write(
                f"dry run: {len(inputs.plan.tensors)} original tensors -> {len(inputs.plan.rows())} converted tensors "
                f"({inputs.plan.total_numel:,} values, {args.dtype}); M = {inputs.config.num_queries}, "
                f"{inputs.config.query_num_heads} heads, <image> id {inputs.config.image_token_id}; "
                f"nothing was written to {args.out}\n"
            )
            return 0
        out = write_folder(
            inputs,
            args.out,
            dtype,
            convert_file_size_to_int(args.max_shard_size),
            source_repo_id=args.source_repo_id,
            vision_repo_id=args.vision_repo_id,
            repo_id=args.repo_id,
        )
    except CheckpointError as error:
        logger.error("%s", error)
        return 1
    sys.stdout.write(f"converted model written to {out}\n")
    return 0


__all__ = ["ConversionInputs", "add_arguments", "format_plan", "prepare", "run", "write_folder"]
