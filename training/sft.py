"""Matryoshka SFT of MQT-LLaVA with TRL's `SFTTrainer`: full fine-tuning of named parts, LoRA, or QLoRA.

Python API (the CLI `mqt-llava train` is a thin layer over it):

    from mqt_llava.training.arguments import parse_recipe
    from mqt_llava.training.sft import train
    trainer = train(*parse_recipe("stage2_instruct", model_name_or_path="my-model", output_dir="out", max_steps=100))
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import torch
from accelerate import PartialState
from peft import LoraConfig
from transformers import AutoConfig, BitsAndBytesConfig, PreTrainedModel
from transformers.trainer import TRAINER_STATE_NAME
from transformers.trainer_utils import get_last_checkpoint, sort_checkpoints
from trl import ModelConfig, SFTConfig, SFTTrainer, get_peft_config

from mqt_llava.modeling_mqt_llava import MqtLlavaConfig, MqtLlavaForConditionalGeneration
from mqt_llava.processing.processing_mqt_llava import MqtLlavaProcessor

from .arguments import PART_PREFIXES, TRAINABLE_PARTS, MatryoshkaArguments
from .collator import MatryoshkaCollator, MatryoshkaDrawCallback
from .data import read_llava_dataset
from .sampling import parse_distribution

logger = logging.getLogger(__name__)

DEFAULT_TRAINABLE_PARTS = ("query_transformer", "language_model", "lm_head")
# Modules bitsandbytes must leave in full precision: everything but the language model's linear layers. transformers
# matches these from the start of a module's full name (or as a suffix), so they are written as full prefixes.
UNQUANTIZED_MODULES = ["model.vision_tower", "model.query_transformer", "lm_head"]


def set_trainable_parts(
    model: PreTrainedModel, parts: list[str] | tuple[str, ...], frozen_parameters: list[str] | tuple[str, ...] = ()
) -> None:
    """Sets `requires_grad` on exactly the parameters of the named parts (see `PART_PREFIXES`), off elsewhere and on
    parameters whose names match one of the `frozen_parameters` regular expressions (each must match something)."""
    unknown = sorted(set(parts) - set(TRAINABLE_PARTS))
    if unknown:
        raise ValueError(f"unknown trainable parts {unknown}; choose among {TRAINABLE_PARTS}")
    prefixes = tuple(PART_PREFIXES[part] for part in parts)
    patterns = [re.compile(pattern) for pattern in frozen_parameters]
    matched = set()
    for name, parameter in model.named_parameters():
        hits = {pattern.pattern for pattern in patterns if pattern.match(name)}
        matched |= hits
        parameter.requires_grad_(name.startswith(prefixes) and not hits)
    unmatched = [pattern.pattern for pattern in patterns if pattern.pattern not in matched]
    if unmatched:
        raise ValueError(f"frozen_parameters {unmatched} match no parameter of the model")


def build_quantization_config(model_args: ModelConfig) -> BitsAndBytesConfig | None:
    """A 4-bit (NF4 by default) or 8-bit bitsandbytes config for the language model only, or None."""
    if not (model_args.load_in_4bit or model_args.load_in_8bit):
        return None
    if not model_args.use_peft:
        raise ValueError("load_in_4bit / load_in_8bit train only adapters: set use_peft: true (QLoRA)")
    compute_dtype = getattr(torch, model_args.dtype) if model_args.dtype not in (None, "auto") else torch.float32
    if model_args.load_in_8bit:
        return BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=UNQUANTIZED_MODULES)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=model_args.bnb_4bit_quant_type,
        bnb_4bit_compute_dtype=compute_dtype,
        bnb_4bit_use_double_quant=model_args.use_bnb_nested_quant,
        bnb_4bit_quant_storage=model_args.bnb_4bit_quant_storage,
        llm_int8_skip_modules=UNQUANTIZED_MODULES,
    )


def build_lora_config(model_args: ModelConfig, model: PreTrainedModel) -> LoraConfig | None:
    """TRL's LoRA config from `model_args`, checked to adapt only language-model layers of `model`."""
    lora_config = get_peft_config(model_args)
    if lora_config is None:
        return None
    targets = lora_config.target_modules
    if targets is None:
        raise ValueError("LoRA needs lora_target_modules (a regex such as '.*language_model.*\\.(q_proj|v_proj)')")
    if isinstance(targets, str):
        hits = [name for name, _ in model.named_modules() if re.fullmatch(targets, name)]
    else:
        hits = [name for name, _ in model.named_modules() if name.split(".")[-1] in targets]
    outside = [name for name in hits if not name.startswith("model.language_model.")]
    if outside:
        raise ValueError(
            f"lora_target_modules {targets!r} also hits {len(outside)} module(s) outside the language model, e.g. "
            f"{outside[:3]}; use a regex such as '.*language_model.*\\.(q_proj|k_proj|v_proj|o_proj)'"
        )
    if not hits:
        raise ValueError(f"lora_target_modules {targets!r} matches no module of the model")
    return lora_config


def load_model(
    model_args: ModelConfig, quantization_config: BitsAndBytesConfig | None
) -> MqtLlavaForConditionalGeneration:
    """Loads the MQT-LLaVA folder `model_args.model_name_or_path` with the requested dtype and quantization."""
    if model_args.model_name_or_path is None:
        raise ValueError("model_name_or_path is required: an MQT-LLaVA folder (see `mqt-llava create`)")
    dtype = model_args.dtype if model_args.dtype in (None, "auto") else getattr(torch, model_args.dtype)
    device_map = None
    if quantization_config is not None and torch.cuda.is_available():
        device_map = {"": PartialState().local_process_index}
    return MqtLlavaForConditionalGeneration.from_pretrained(
        model_args.model_name_or_path,
        revision=model_args.model_revision,
        dtype=dtype,
        attn_implementation=model_args.attn_implementation,
        quantization_config=quantization_config,
        device_map=device_map,
    )


def build_trainer(
    matryoshka_args: MatryoshkaArguments, training_args: SFTConfig, model_args: ModelConfig
) -> SFTTrainer:
    """Reads the data, loads and prepares the model, and returns a ready `SFTTrainer` with the Matryoshka collator."""
    dataset, report = read_llava_dataset(
        matryoshka_args.data_path,
        matryoshka_args.image_folder,
        strict=matryoshka_args.strict,
        verify_images=matryoshka_args.verify_images,
    )
    if report.num_bad:
        logger.warning(
            "training on %d records; %d bad record(s) were skipped (see above)", report.num_good, report.num_bad
        )

    quantization_config = build_quantization_config(model_args)
    model = load_model(model_args, quantization_config)
    # This package's own processor class reads the folder, so the folder's code is never needed: saying so keeps
    # transformers from stopping to ask whether to run it while it looks up the tokenizer, and registering the
    # config class lets that lookup read config.json as an MQT-LLaVA config (not as a bare one, with a warning).
    AutoConfig.register(MqtLlavaConfig.model_type, MqtLlavaConfig, exist_ok=True)
    processor = MqtLlavaProcessor.from_pretrained(
        model_args.model_name_or_path, revision=model_args.model_revision, trust_remote_code=False
    )

    lora_config = build_lora_config(model_args, model)
    if lora_config is None:
        parts = matryoshka_args.trainable_parts or DEFAULT_TRAINABLE_PARTS
        set_trainable_parts(model, parts, matryoshka_args.frozen_parameters or ())
        logger.info(
            "training parts %s, frozen: %s, frozen inside them: %s",
            list(parts), sorted(set(TRAINABLE_PARTS) - set(parts)), matryoshka_args.frozen_parameters or [],
        )  # fmt: skip
    elif matryoshka_args.trainable_parts is not None or matryoshka_args.frozen_parameters is not None:
        raise ValueError(
            "trainable_parts and frozen_parameters do not apply to LoRA: use lora_modules_to_save for fully trained "
            "modules"
        )

    distribution = parse_distribution(matryoshka_args.num_visual_tokens_distribution, model.config.num_queries)
    logger.info(
        "m per %s: %s over %s (mean %.1f), copies per example: %d",
        matryoshka_args.num_visual_tokens_draw, distribution.spec, list(distribution.values), distribution.mean,
        matryoshka_args.num_visual_tokens_copies,
    )  # fmt: skip
    collator = MatryoshkaCollator(
        processor=processor,
        distribution=distribution,
        seed=training_args.seed,
        max_length=training_args.max_length,
        pad_to_multiple_of=training_args.pad_to_multiple_of,
        draw_per=matryoshka_args.num_visual_tokens_draw,
        copies=matryoshka_args.num_visual_tokens_copies,
    )
    trainer = SFTTrainer(
        model=model,
        args=training_args,
        data_collator=collator,
        train_dataset=dataset,
        processing_class=processor,
        peft_config=lora_config,
        callbacks=[MatryoshkaDrawCallback(collator)],
    )
    if quantization_config is not None and quantization_config.bnb_4bit_compute_dtype == torch.float32:
        keep_trainable_in_float32(trainer.model)
    return trainer


def keep_trainable_in_float32(model: PreTrainedModel) -> None:
    """Casts every trainable parameter back to float32.

    TRL stores the trainable weights of a quantized model (adapters and `modules_to_save`) in bfloat16, as the QLoRA
    paper does with bfloat16 compute. When the 4-bit layers compute in float32 (`dtype: float32`, the CPU setting),
    nothing runs in bfloat16, and bfloat16 storage only rounds away every update smaller than 1/256 of a weight.
    """
    cast = 0
    for parameter in model.parameters():
        if parameter.requires_grad and parameter.dtype != torch.float32:
            parameter.data = parameter.data.float()
            cast += 1
    if cast:
        logger.info("kept %d trainable tensors in float32 (4-bit layers compute in float32)", cast)


def last_complete_checkpoint(output_dir: str | Path) -> str | None:
    """The newest `checkpoint-N` folder of `output_dir` that holds a trainer state; None if there is none.

    This is transformers' `get_last_checkpoint`, except that a folder without `trainer_state.json` (written last, so
    missing when a run was killed while saving) is skipped with a warning and the one before it is taken.
    """
    newest = get_last_checkpoint(str(output_dir)) if Path(output_dir).is_dir() else None
    if newest is None or (Path(newest) / TRAINER_STATE_NAME).is_file():
        return newest
    for folder in reversed(sort_checkpoints(str(output_dir))):
        if (Path(folder) / TRAINER_STATE_NAME).is_file():
            return folder
        logger.warning("skipping %s: incomplete checkpoint (no %s)", folder, TRAINER_STATE_NAME)
    return None


def resolve_checkpoint(resume_from_checkpoint: str | None, output_dir: str) -> str | None:
    """`last` (or `true`) means the newest complete checkpoint in `output_dir`; a path must be a checkpoint folder."""
    if resume_from_checkpoint is None:
        return None
    if resume_from_checkpoint.lower() in ("last", "true"):
        checkpoint = last_complete_checkpoint(output_dir)
        if checkpoint is None:
            raise ValueError(
                f"resume_from_checkpoint={resume_from_checkpoint!r} but {output_dir} holds no complete checkpoint"
            )
        logger.info("resuming from %s", checkpoint)
        return checkpoint
    if not (Path(resume_from_checkpoint) / TRAINER_STATE_NAME).is_file():
        raise ValueError(
            f"resume_from_checkpoint: {resume_from_checkpoint} is not a complete checkpoint (no {TRAINER_STATE_NAME})"
        )
    return resume_from_checkpoint


def train(matryoshka_args: MatryoshkaArguments, training_args: SFTConfig, model_args: ModelConfig) -> SFTTrainer:
    """Trains (resuming if asked), saves the result with its processor in `output_dir` and returns the trainer.

    Full fine-tuning saves a complete Hub folder; LoRA saves a PEFT adapter (merge it with `mqt-llava merge`)."""
    trainer = build_trainer(matryoshka_args, training_args, model_args)
    checkpoint = resolve_checkpoint(training_args.resume_from_checkpoint, training_args.output_dir)
    trainer.train(resume_from_checkpoint=checkpoint)
    trainer.save_model(training_args.output_dir)
    logger.info("saved to %s", training_args.output_dir)
    return trainer


__all__ = [
    "DEFAULT_TRAINABLE_PARTS",
    "build_lora_config",
    "build_quantization_config",
    "build_trainer",
    "keep_trainable_in_float32",
    "last_complete_checkpoint",
    "load_model",
    "resolve_checkpoint",
    "set_trainable_parts",
    "train",
]
