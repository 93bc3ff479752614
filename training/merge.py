"""`mqt-llava merge`: fold a LoRA adapter (and its fully trained modules) into its base model.

Writes a self-contained Hub folder: merged safetensors weights, config with `auto_map` and the remote code, the
processor and the generation config, loadable with `AutoModelForImageTextToText.from_pretrained(dir,
trust_remote_code=True)` and no adapter. The base is always loaded in full precision (never merge into 4-bit weights).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch
from peft import PeftModel

from mqt_llava.modeling_mqt_llava import MqtLlavaForConditionalGeneration
from mqt_llava.processing.processing_mqt_llava import MqtLlavaProcessor

logger = logging.getLogger(__name__)

DTYPES = ("float32", "bfloat16", "float16")


def merge_adapter(base: str | Path, adapter: str | Path, output: str | Path, dtype: str = "float32") -> Path:
    """Merges the PEFT adapter in `adapter` into the model folder `base` and writes the result to `output`.

    The processor comes from the adapter folder when it has one (the trainer saves it there), else from the base.
    Raises `ValueError` if the merged weights' names differ from the base's (a leftover adapter layer).
    """
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    adapter = Path(adapter)
    if not (adapter / "adapter_config.json").is_file():
        raise ValueError(f"{adapter} holds no PEFT adapter (adapter_config.json is missing)")
    model = MqtLlavaForConditionalGeneration.from_pretrained(base, dtype=getattr(torch, dtype))
    if getattr(model.config, "quantization_config", None) is not None:
        raise ValueError(f"{base} is a quantized model; merge into the full-precision base instead")
    base_names = set(model.state_dict())
    merged = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    merged_names = set(merged.state_dict())
    if merged_names != base_names:
        raise ValueError(
            "the merged weights do not match the base's names: extra "
            f"{sorted(merged_names - base_names)[:5]}, missing {sorted(base_names - merged_names)[:5]}"
        )
    output = Path(output)
    merged.save_pretrained(output)
    processor_source = adapter if (adapter / "processor_config.json").is_file() else base
    MqtLlavaProcessor.from_pretrained(processor_source).save_pretrained(output)
    logger.info("merged %s into %s -> %s", adapter, base, output)
    return output


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--base", required=True, help="the full-precision model folder the adapter was trained on")
    parser.add_argument("--adapter", required=True, help="the LoRA/QLoRA output folder (adapter_config.json)")
    parser.add_argument("--output", required=True, help="folder to write the merged model to")
    parser.add_argument("--dtype", default="float32", choices=DTYPES, help="dtype of the merged weights")


def run(args: argparse.Namespace) -> int:
    merge_adapter(args.base, args.adapter, args.output, dtype=args.dtype)
    return 0


__all__ = ["add_arguments", "merge_adapter", "run"]
