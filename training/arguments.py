"""The project's own training arguments, parsed by `TrlParser` next to TRL's `SFTConfig` and `ModelConfig`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trl import ModelConfig, SFTConfig, TrlParser

# Parameter-name prefixes of each part that full fine-tuning can train (MqtLlavaForConditionalGeneration layout).
PART_PREFIXES = {
    "vision_tower": "model.vision_tower.",
    "query_transformer": "model.query_transformer.",
    "language_model": "model.language_model.",
    "lm_head": "lm_head.",
}
TRAINABLE_PARTS = tuple(PART_PREFIXES)
RECIPES_DIR = Path(__file__).parent / "recipes"


@dataclass
class MatryoshkaArguments:
    """Data and Matryoshka settings of a training run (the `SFTConfig` and `ModelConfig` fields come from TRL).

    Args:
        data_path: LLaVA-format conversations, `.json` (array) or `.jsonl`.
        image_folder: folder the records' `image` paths are relative to.
        strict: stop on the first bad record report instead of training on the good ones.
        verify_images: check every image file once while reading the data.
        num_visual_tokens_distribution: distribution of m per batch: `paper`, `uniform`, `log_uniform`, `power:A`,
            `power:A:LO..HI`, `fixed:N`, `fixed:max`, a list such as `16,64,max`, or a weighted mixture of those such
            as `0.4*fixed:4+0.6*power:0.5:2..max`.
        num_visual_tokens_draw: `batch` draws one m per batch (the paper); `image` draws one m per image, so each
            optimizer step trains many budgets.
        num_visual_tokens_copies: with `image` draws, each example enters its batch this many times with its own
            draws, so one step scores the same image at several budgets (the batch grows by this factor).
        trainable_parts: parts trained in full fine-tuning (`vision_tower`, `query_transformer`, `language_model`,
            `lm_head`); None trains all but the vision tower. Must stay None with LoRA, where `lora_modules_to_save`
            and the adapters decide.
        frozen_parameters: regular expressions; parameters whose full names match one (from the start) stay frozen
            even inside a trainable part, e.g. the query transformer's attention layout. Full fine-tuning only.
    """

    data_path: str = field(metadata={"help": "LLaVA-format conversations (.json array or .jsonl)."})
    image_folder: str | None = field(
        default=None, metadata={"help": "Folder that the records' image paths are relative to."}
    )
    strict: bool = field(default=False, metadata={"help": "Fail on any bad record instead of skipping it."})
    verify_images: bool = field(default=True, metadata={"help": "Open every image once while reading the data."})
    num_visual_tokens_distribution: str = field(
        default="paper",
        metadata={
            "help": "m per batch: paper | uniform | log_uniform | power:A | power:A:LO..HI | fixed:N | fixed:max | a list "
            "like 16,64,max | a weighted mixture like 0.4*fixed:4+0.6*power:0.5:2..max."
        },
    )
    num_visual_tokens_draw: str = field(
        default="batch",
        metadata={"help": "batch: one m per batch (the paper); image: one m per image."},
    )
    num_visual_tokens_copies: int = field(
        default=1,
        metadata={"help": "With image draws: each example enters its batch this many times, each copy with its own m."},
    )
    trainable_parts: list[str] | None = field(
        default=None,
        metadata={
            "help": f"Parts trained in full fine-tuning, among {TRAINABLE_PARTS}; default: all but vision_tower.",
        },
    )
    frozen_parameters: list[str] | None = field(
        default=None,
        metadata={"help": "Regular expressions of parameter names kept frozen inside the trainable parts."},
    )

    def __post_init__(self) -> None:
        if self.trainable_parts is not None:
            unknown = sorted(set(self.trainable_parts) - set(TRAINABLE_PARTS))
            if unknown or not self.trainable_parts:
                raise ValueError(
                    f"trainable_parts must be a non-empty list of {TRAINABLE_PARTS}, got {self.trainable_parts}"
                )


def make_parser() -> TrlParser:
    """The `TrlParser` of `mqt-llava train`: (MatryoshkaArguments, SFTConfig, ModelConfig)."""
    return TrlParser((MatryoshkaArguments, SFTConfig, ModelConfig))


def recipe_path(recipe: str | Path) -> Path:
    """A recipe file: a path as given, or the name of a shipped recipe (`stage1_align`, `stage2_instruct`, `lora`,
    `qlora`) in training/recipes."""
    path = Path(recipe)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise FileNotFoundError(f"recipe file not found: {path}")
        return path
    shipped = RECIPES_DIR / f"{recipe}.yaml"
    if not shipped.is_file():
        names = sorted(file.stem for file in RECIPES_DIR.glob("*.yaml"))
        raise FileNotFoundError(f"unknown recipe {recipe!r}: give a .yaml path or one of {names}")
    return shipped


def fields_to_arguments(fields: dict[str, Any]) -> list[str]:
    """`{"max_steps": 10, "bf16": False, "trainable_parts": ["lm_head"]}` -> `--max_steps 10 --bf16 false ...`."""
    arguments = []
    for name, value in fields.items():
        if isinstance(value, bool):
            value = str(value).lower()
        values = [str(item) for item in value] if isinstance(value, (list, tuple)) else [str(value)]
        arguments += [f"--{name}", *values]
    return arguments


def parse_recipe(
    recipe: str | Path | None, overrides: list[str] | None = None, **fields: Any
) -> tuple[MatryoshkaArguments, SFTConfig, ModelConfig]:
    """Reads a recipe (a YAML path or a shipped recipe name; None: no file) and applies the command-line style
    `overrides` (`["--max_steps", "10"]`), then the keyword `fields` (`max_steps=10`), on top."""
    args = [*(overrides or []), *fields_to_arguments(fields)]
    if recipe is not None:
        args = ["--config", str(recipe_path(recipe)), *args]
    return make_parser().parse_args_and_config(args)


__all__ = [
    "PART_PREFIXES",
    "RECIPES_DIR",
    "TRAINABLE_PARTS",
    "MatryoshkaArguments",
    "fields_to_arguments",
    "make_parser",
    "parse_recipe",
    "recipe_path",
]
