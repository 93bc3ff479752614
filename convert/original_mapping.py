"""How the released MQT-LLaVA checkpoint (LLaVA-repository layout, `llava_llama`) maps onto this project's model.

Three things live here: the target `MqtLlavaConfig` built from the original `config.json` and the CLIP folder's
config; the rules that rename and reshape every original tensor; and `plan_conversion`, which applies the rules to
tensor *shapes* only (on the meta device) and fails listing every unknown, unexpected, missing or mis-shaped tensor
before a single byte is written.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import torch
from transformers import LlamaConfig, PretrainedConfig

from mqt_llava.modeling_mqt_llava.configuration_mqt_llava import MqtLlavaConfig

from .original_checkpoint import CheckpointError, TensorInfo

logger = logging.getLogger(__name__)

ORIGINAL_MODEL_TYPE = "llava_llama"
QUERY_PREFIX = "model.query_abstractor."
IMAGE_TOKEN = "<image>"
# Llama fields carried from the original config into `text_config`; LLaVA's own keys (mm_*, image_*, ...) stay out.
LLAMA_KEYS = (
    "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
    "num_key_value_heads", "head_dim", "hidden_act", "max_position_embeddings", "initializer_range", "rms_norm_eps",
    "rope_theta", "rope_scaling", "rope_parameters", "attention_bias", "attention_dropout", "mlp_bias",
    "pretraining_tp", "bos_token_id", "eos_token_id", "pad_token_id", "use_cache",
)  # fmt: skip
SELECT_FEATURES = {"patch": "default", "cls_patch": "full"}

Transform = Callable[[torch.Tensor], tuple[torch.Tensor, ...]]


def _same(tensor: torch.Tensor) -> tuple[torch.Tensor, ...]:
    return (tensor,)


def _split_qkv(tensor: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """nn.MultiheadAttention's packed `in_proj` (3D, ...) -> q, k, v (D, ...) each, in that order."""
    if tensor.shape[0] % 3:
        raise CheckpointError(f"a packed q/k/v projection needs a first dimension divisible by 3: {list(tensor.shape)}")
    return tuple(tensor.chunk(3, dim=0))


def _transpose(tensor: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The original `proj` (D_vision, H_text), applied as `x @ proj`, -> a Linear weight (H_text, D_vision)."""
    return (tensor.t().contiguous(),)


def _add_image_row(tensor: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """(V, H) -> (V + 1, H): one more row for `<image>`, set to the mean of the existing rows (never predicted: image
    positions are masked out of the loss and replaced by visual tokens in the input)."""
    mean = tensor.float().mean(dim=0, keepdim=True).to(tensor.dtype)  # (1, H)
    return (torch.cat([tensor, mean], dim=0),)


@dataclass(frozen=True)
class Rule:
    """Original names matching `pattern` become `targets` (templates filled from the match) through `transform`."""

    pattern: str
    targets: tuple[str, ...]
    transform: Transform = _same
    note: str = ""


_QT = "model.query_transformer."
CHECKPOINT_RULES = (
    Rule(r"model\.embed_tokens\.weight", ("model.language_model.embed_tokens.weight",), _add_image_row, "+<image> row"),
    Rule(r"lm_head\.weight", ("lm_head.weight",), _add_image_row, "+<image> row"),
    Rule(r"model\.norm\.(weight)", ("model.language_model.norm.{0}",)),
    Rule(r"model\.layers\.(\d+)\.(.+)", ("model.language_model.layers.{0}.{1}",)),
    Rule(r"model\.query_abstractor\.query", (_QT + "query",)),
    Rule(r"model\.query_abstractor\.pos_embed", (_QT + "query_position",), note="stored sin-cos table"),
    Rule(
        r"model\.query_abstractor\.attn\.in_proj_(weight|bias)",
        tuple(_QT + f"layers.0.attention.{p}_proj.{{0}}" for p in "qkv"),
        _split_qkv,
        "split q/k/v",
    ),
    Rule(r"model\.query_abstractor\.attn\.out_proj\.(weight|bias)", (_QT + "layers.0.attention.o_proj.{0}",)),
    Rule(r"model\.query_abstractor\.ln_q\.(weight|bias)", (_QT + "layers.0.query_norm.{0}",)),
    Rule(r"model\.query_abstractor\.ln_k\.(weight|bias)", (_QT + "layers.0.key_norm.{0}",)),
    Rule(r"model\.query_abstractor\.ln_v\.(weight|bias)", (_QT + "layers.0.value_norm.{0}",)),
    Rule(r"model\.query_abstractor\.proj", (_QT + "proj.weight",), _transpose, "transposed"),
    Rule(r"model\.vision_tower\.vision_tower\.vision_model\.(.+)", ("{vision}{0}",)),
)
# `{vision}` is the vision tower's prefix in the target model, read from its state dict (transformers 5 flattened
# CLIPVisionModel: `model.vision_tower.embeddings...`; older versions had `model.vision_tower.vision_model.`).
VISION_TOWER_RULES = (
    Rule(r"vision_model\.(.+)", ("{vision}{0}",)),  # a CLIPModel folder, or a CLIPVisionModel saved before v5
    Rule(r"((?:embeddings|pre_layrnorm|encoder|post_layernorm)\..+)", ("{vision}{0}",)),  # a v5 CLIPVisionModel
)
# Buffers older checkpoints saved that current models recompute.
CHECKPOINT_IGNORED = (r".+\.rotary_emb\.inv_freq", r".+\.embeddings\.position_ids")
# A CLIP folder also holds the text tower and the contrastive heads; only `vision_model.*` is used.
VISION_TOWER_IGNORED = CHECKPOINT_IGNORED + (
    r"text_model\..+", r"visual_projection\..+", r"text_projection\..+", "logit_scale"
)


@dataclass(frozen=True)
class MappedTensor:
    """One original tensor and the target tensors it becomes."""

    source: TensorInfo
    origin: str  # "checkpoint" or "vision tower"
    targets: tuple[str, ...]
    target_shapes: tuple[tuple[int, ...], ...]
    transform: Transform
    note: str

    def apply(self, tensor: torch.Tensor) -> dict[str, torch.Tensor]:
        return dict(zip(self.targets, self.transform(tensor)))


@dataclass
class ConversionPlan:
    """Every original tensor to read (in file order), the number of values the converted model holds, and the vision
    tensors present in both sources (the checkpoint's copy is used; the writer compares them)."""

    tensors: list[MappedTensor]
    total_numel: int
    vision_duplicates: dict[str, str]  # checkpoint vision tensor -> the same tensor's name in the vision-tower folder

    def rows(self) -> list[tuple[str, str, str, str, str]]:
        """The mapping table: (origin, original name, original shape, target name, target shape + note)."""
        rows = []
        for mapped in self.tensors:
            for target, shape in zip(mapped.targets, mapped.target_shapes):
                note = f"  ({mapped.note})" if mapped.note else ""
                source_shape = str(list(mapped.source.shape))
                rows.append((mapped.origin, mapped.source.name, source_shape, target, f"{list(shape)}{note}"))
        return rows


def _match(rules: Iterable[Rule], name: str, vision_prefix: str) -> tuple[Rule, tuple[str, ...]] | None:
    for rule in rules:
        found = re.fullmatch(rule.pattern, name)
        if found:
            return rule, tuple(target.format(*found.groups(), vision=vision_prefix) for target in rule.targets)
    return None


def _map_tensors(
    infos: Iterable[TensorInfo],
    rules: tuple[Rule, ...],
    ignored: tuple[str, ...],
    origin: str,
    vision_prefix: str,
    problems: list[str],
) -> list[MappedTensor]:
    mapped = []
    for info in infos:
        if any(re.fullmatch(pattern, info.name) for pattern in ignored):
            logger.debug("ignoring %s tensor %s", origin, info.name)
            continue
        match = _match(rules, info.name, vision_prefix)
        if match is None:
            problems.append(f"unknown {origin} tensor {info.name} {list(info.shape)}: no rule maps it")
            continue
        rule, targets = match
        try:
            outputs = rule.transform(torch.empty(info.shape, dtype=info.dtype, device="meta"))
        except (CheckpointError, RuntimeError) as error:
            problems.append(f"mis-shaped {origin} tensor {info.name} {list(info.shape)}: {error}")
            continue
        shapes = tuple(tuple(output.shape) for output in outputs)
        mapped.append(MappedTensor(info, origin, targets, shapes, rule.transform, rule.note))
    return mapped


def plan_conversion(
    checkpoint_infos: Iterable[TensorInfo],
    vision_infos: Iterable[TensorInfo],
    expected: Mapping[str, tuple[int, ...]],
) -> ConversionPlan:
    """Maps every tensor and checks the result against the target model's state-dict shapes `expected`.

    Vision-tower tensors come from the checkpoint when it has them, else from the vision-tower folder. Raises a
    `CheckpointError` listing every unknown, unexpected, duplicated, mis-shaped and missing tensor.
    """
    nested = "model.vision_tower.vision_model."
    vision_prefix = nested if any(name.startswith(nested) for name in expected) else "model.vision_tower."
    problems: list[str] = []
    from_checkpoint = _map_tensors(
        checkpoint_infos, CHECKPOINT_RULES, CHECKPOINT_IGNORED, "checkpoint", vision_prefix, problems
    )
    provider = {target: mapped.source.name for mapped in from_checkpoint for target in mapped.targets}
    from_vision, duplicates = [], {}
    for mapped in _map_tensors(
        vision_infos, VISION_TOWER_RULES, VISION_TOWER_IGNORED, "vision tower", vision_prefix, problems
    ):
        if mapped.targets[0] in provider:
            duplicates[provider[mapped.targets[0]]] = mapped.source.name
        else:
            from_vision.append(mapped)
    tensors = from_checkpoint + from_vision
    seen: dict[str, str] = {}
    for mapped in tensors:
        for target, shape in zip(mapped.targets, mapped.target_shapes):
            if target in seen:
                problems.append(f"duplicated target {target}: from {seen[target]} and {mapped.source.name}")
            seen[target] = mapped.source.name
            if target not in expected:
                problems.append(
                    f"unexpected {mapped.origin} tensor {mapped.source.name}: its target {target} is not in the model"
                )
            elif tuple(expected[target]) != shape:
                problems.append(
                    f"mis-shaped {mapped.origin} tensor {mapped.source.name} {list(mapped.source.shape)}: "
                    f"gives {target} {list(shape)}, the model expects {list(expected[target])}"
                )
    for target in expected:
        if target not in seen:
            problems.append(
                f"missing tensor {target} {list(expected[target])}: neither the checkpoint nor the vision tower has it"
            )
    if problems:
        raise CheckpointError(
            f"the checkpoint does not match the target model ({len(problems)} problem(s)):\n  " + "\n  ".join(problems)
        )
    logger.info(
        "mapped %d tensors (%d of them from the vision-tower folder, the rest from the checkpoint)",
        len(tensors),
        len(from_vision),
    )
    total = sum(torch.Size(shape).numel() for mapped in tensors for shape in mapped.target_shapes)
    return ConversionPlan(tensors, total, duplicates)


def vision_config_from(config: PretrainedConfig) -> PretrainedConfig:
    """The vision-tower config inside a CLIP (or SigLIP) folder's config: its `vision_config`, or the config itself."""
    vision = getattr(config, "vision_config", None) or config
    if vision.model_type not in ("clip_vision_model", "siglip_vision_model"):
        raise CheckpointError(f"the vision-tower folder holds a {config.model_type!r} model, not a CLIP or SigLIP one")
    return vision


def original_num_visual_tokens(original: Mapping[str, object], num_queries: int) -> int | None:
    """The processor default: an integer budget stored in the original config is kept; anything else gives `None`,
    meaning M (`first_stage` meant M in the original code; `second_stage` meant a random m on every call)."""
    value = original.get("num_visual_tokens")
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= num_queries:
        return value
    if value not in (None, "first_stage"):
        logger.warning(
            "the original config says num_visual_tokens=%r (%s); the converted model defaults to M = %d visual tokens "
            "instead: pass num_visual_tokens to the processor or to generate for fewer",
            value,
            "in the original code, a random m on every call" if value == "second_stage" else "not a budget in 1..M",
            num_queries,
        )
    return None


def check_original_config(original: Mapping[str, object], path: str) -> None:
    """Refuses original configs this converter cannot reproduce exactly, naming the field."""
    if original.get("model_type") != ORIGINAL_MODEL_TYPE:
        raise CheckpointError(f"{path}: model_type is {original.get('model_type')!r}, expected {ORIGINAL_MODEL_TYPE!r}")
    unsupported = {
        "mm_patch_merge_type": ("flat", None),
        "mm_use_im_start_end": (False, None),
        "mm_vision_select_feature": tuple(SELECT_FEATURES) + (None,),
    }
    for key, allowed in unsupported.items():
        if original.get(key) not in allowed:
            raise CheckpointError(f"{path}: {key}={original.get(key)!r} is not supported (supported: {allowed})")
    if original.get("image_aspect_ratio", "pad") != "pad":
        logger.warning(
            "%s: image_aspect_ratio=%r, but the converted processor pads images to a square (the released 'pad')",
            path,
            original.get("image_aspect_ratio"),
        )


def build_target_config(
    original: Mapping[str, object],
    vision_config: PretrainedConfig,
    num_queries: int,
    num_heads: int,
    dtype: torch.dtype,
) -> MqtLlavaConfig:
    """The `MqtLlavaConfig` of the converted model: the original Llama settings with one more vocabulary row for
    `<image>` (id = the original vocabulary size), released query-transformer semantics (`key_source="position"`,
    one layer) and the original vision feature layer and selection."""
    text = {key: original[key] for key in LLAMA_KEYS if key in original}
    vocab_size = int(text["vocab_size"])
    text["vocab_size"] = vocab_size + 1
    text_config = LlamaConfig(**text)
    config = MqtLlavaConfig(
        vision_config=vision_config.to_dict(),
        text_config=text_config.to_dict(),
        num_queries=num_queries,
        query_num_heads=num_heads,
        query_num_layers=1,
        query_key_source="position",
        vision_feature_layer=int(original.get("mm_vision_select_layer", -2)),
        vision_feature_select_strategy=SELECT_FEATURES[original.get("mm_vision_select_feature") or "patch"],
        image_token_id=vocab_size,
        tie_word_embeddings=bool(original.get("tie_word_embeddings", False)),
    )
    config.dtype = dtype
    return config


__all__ = [
    "CHECKPOINT_RULES",
    "IMAGE_TOKEN",
    "ConversionPlan",
    "MappedTensor",
    "build_target_config",
    "check_original_config",
    "original_num_visual_tokens",
    "plan_conversion",
    "vision_config_from",
]
