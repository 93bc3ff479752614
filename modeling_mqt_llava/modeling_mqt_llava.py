"""MQT-LLaVA: a vision tower, a Matryoshka query transformer and a decoder language model, in the LLaVA layout."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch
from torch import nn
from transformers import AutoModel, GenerationConfig, GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast
from transformers.quantizers.quantizers_utils import should_convert_module
from transformers.utils import logging

from .adaptive_budget import AUTO, resolve_settings
from .auto_generation import generate_with_auto_budget
from .configuration_mqt_llava import MqtLlavaConfig, check_num_visual_tokens
from .query_transformer import MatryoshkaQueryTransformer, sincos_2d

logger = logging.get_logger(__name__)


@dataclass
class MqtLlavaModelOutputWithPast(BaseModelOutputWithPast):
    """`BaseModelOutputWithPast` plus `image_hidden_states`: the visual tokens of every image, (n_images, m_max, H)."""

    image_hidden_states: torch.FloatTensor | None = None


@dataclass
class MqtLlavaCausalLMOutputWithPast(CausalLMOutputWithPast):
    """`CausalLMOutputWithPast` plus `image_hidden_states`, (n_images, m_max, H)."""

    image_hidden_states: torch.FloatTensor | None = None


def image_run_lengths(input_ids: torch.LongTensor, image_token_id: int) -> torch.LongTensor:
    """Lengths of the runs of `image_token_id` in `input_ids` (B, L), in reading order (row by row): (n_runs,)."""
    is_image = input_ids == image_token_id  # (B, L)
    starts = is_image.clone()
    starts[:, 1:] &= ~is_image[:, :-1]
    run_index = starts.flatten().cumsum(0) - 1  # (B*L,) index of the run each position belongs to
    return torch.bincount(run_index[is_image.flatten()], minlength=int(starts.sum()))


def prompt_is_uncached(language_model_kwargs: dict) -> bool:
    """Whether a forward call starts from an empty KV cache (a prompt, not a decode step). The cache travels under
    the installed transformers' name: `cache` from 5.24 on, `past_key_values` before."""
    cache = language_model_kwargs.get("cache", language_model_kwargs.get("past_key_values"))
    return cache is None or cache.get_seq_length() == 0


def check_quantization_skip_modules(model: nn.Module, skip_modules: list[str] | None) -> None:
    """Refuses a bitsandbytes `llm_int8_skip_modules` entry that names a part of `model` by its short name.

    transformers compares each entry with the start or the end of a linear layer's full name, so `"vision_tower"`
    matches no layer of `MqtLlavaForConditionalGeneration` (whose layers are `model.vision_tower....`) and the
    vision tower would be quantized without a word. Raises a `ValueError` giving the full names instead.
    """
    linear_names = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    for entry in skip_modules or ():
        if any(not should_convert_module(name, [entry]) for name in linear_names):
            continue
        # where the entry stands as whole name components inside a layer's name, e.g. "model.vision_tower"
        inside = [name for name in linear_names if f".{entry}." in f".{name}."]
        prefixes = sorted({name[: f".{name}.".index(f".{entry}.") + len(entry)] for name in inside})
        if not prefixes:
            continue
        part = "model." if isinstance(getattr(model, "model", None), MqtLlavaModel) else ""
        recommended = [f"{part}vision_tower", f"{part}query_transformer"] + (["lm_head"] if part else [])
        raise ValueError(
            f"llm_int8_skip_modules entry {entry!r} matches no layer of {type(model).__name__}: transformers compares "
            f"each entry with the start or the end of a layer's full name. Write {prefixes[0]!r} instead; to keep "
            f"the vision tower and the query transformer unquantised, pass llm_int8_skip_modules={recommended}."
        )


class MqtLlavaPreTrainedModel(PreTrainedModel):
    config: MqtLlavaConfig
    config_class = MqtLlavaConfig
    base_model_prefix = "model"
    input_modalities = ("image", "text")
    supports_gradient_checkpointing = True
    _no_split_modules = ["QueryLayer"]
    _skip_keys_device_placement = ["past_key_values", "cache"]
    _supports_flash_attn = True
    _supports_sdpa = True
    _supports_attention_backend = True

    def post_init(self) -> None:
        """transformers' end-of-construction step, plus a check of the bitsandbytes skip list the model is being
        loaded with (`from_pretrained` sets `config.quantization_config` before building the model)."""
        super().post_init()
        quantization = getattr(self.config, "quantization_config", None)
        if isinstance(quantization, dict):
            skip_modules = quantization.get("llm_int8_skip_modules")
        else:
            skip_modules = getattr(quantization, "llm_int8_skip_modules", None)
        check_quantization_skip_modules(self, skip_modules)

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, MatryoshkaQueryTransformer):
            init.trunc_normal_(module.query, std=0.02)
            init.copy_(module.query_position, sincos_2d(module.query.shape[1], math.isqrt(module.num_queries)))


class MqtLlavaModel(MqtLlavaPreTrainedModel):
    """Vision tower + query transformer + base language model; returns the language model's `last_hidden_state`."""

    def __init__(self, config: MqtLlavaConfig):
        super().__init__(config)
        self.vision_tower = AutoModel.from_config(config.vision_config)
        self.query_transformer = MatryoshkaQueryTransformer(config)
        self.language_model = AutoModel.from_config(config.text_config)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.language_model.set_input_embeddings(value)

    def get_vision_features(self, pixel_values: torch.FloatTensor) -> torch.FloatTensor:
        """pixel_values (B, 3, H, W) -> the selected vision-tower hidden states (B, N, D_vision)."""
        outputs = self.vision_tower(pixel_values, output_hidden_states=True, return_dict=True)
        features = outputs.hidden_states[self.config.vision_feature_layer]
        if self.config.vision_feature_select_strategy == "default":
            features = features[:, 1:]
        return features

    def get_image_features(
        self, pixel_values: torch.FloatTensor, num_visual_tokens: int | None = None
    ) -> torch.FloatTensor:
        """pixel_values (B, 3, H, W) -> visual tokens (B, m, H_text), m = `num_visual_tokens` (default: config, else M).

        The query transformer's attention weights come from `self.query_transformer(features, m,
        output_attentions=True)` on `self.get_vision_features(pixel_values)`.
        """
        m = num_visual_tokens if num_visual_tokens is not None else self.config.num_visual_tokens
        m = check_num_visual_tokens(self.config.num_queries if m is None else m, self.config.num_queries)
        features = self.get_vision_features(pixel_values.to(self.vision_tower.dtype))
        tokens, _ = self.query_transformer(features, m)
        return tokens

    def merge_image_features(
        self, input_ids: torch.LongTensor, inputs_embeds: torch.FloatTensor, pixel_values: torch.FloatTensor
    ) -> tuple[torch.FloatTensor, torch.FloatTensor]:
        """Places each image's visual tokens on its run of image tokens; m per image is the length of its run.

        The images are encoded once at the longest run; shorter runs take the first m tokens (the nesting property).
        Returns the new `inputs_embeds` (B, L, H) and the visual tokens (n_images, m_max, H).
        """
        lengths = image_run_lengths(input_ids, self.config.image_token_id)
        if lengths.numel() != pixel_values.shape[0]:
            raise ValueError(
                f"The input ids hold {lengths.numel()} runs of image tokens but {pixel_values.shape[0]} images were "
                "given; each image needs exactly one run (separate consecutive images with text)."
            )
        m_max = int(lengths.max())
        if m_max > self.config.num_queries:
            raise ValueError(
                f"An image-token run has {m_max} tokens, more than the model's {self.config.num_queries} queries."
            )
        image_features = self.get_image_features(pixel_values, m_max)  # (n_images, m_max, H)
        keep = torch.arange(m_max, device=lengths.device)[None, :] < lengths[:, None]  # (n_images, m_max)
        selected = image_features[keep.to(image_features.device)].to(inputs_embeds.dtype)  # (sum of m, H)
        image_mask = (input_ids == self.config.image_token_id).unsqueeze(-1).to(inputs_embeds.device)  # (B, L, 1)
        return inputs_embeds.masked_scatter(image_mask, selected), image_features

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        pixel_values: torch.FloatTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        use_cache: bool | None = None,
        **kwargs,
    ) -> MqtLlavaModelOutputWithPast:
        """input_ids (B, L) with one run of image tokens per image; pixel_values (n_images, 3, H, W).

        The KV cache and other language-model arguments travel in `kwargs` under the installed transformers' own
        names (`past_key_values`, or `cache` from 5.24 on).
        """
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of input_ids or inputs_embeds.")
        if inputs_embeds is None:
            inputs_embeds = self.get_input_embeddings()(input_ids)
        image_features = None
        if pixel_values is not None:
            if input_ids is None:
                raise ValueError("pixel_values need input_ids: the image-token runs say where each image goes.")
            inputs_embeds, image_features = self.merge_image_features(input_ids, inputs_embeds, pixel_values)
        elif input_ids is not None and prompt_is_uncached(kwargs):
            # a prompt with image tokens but no images would be answered blind (decode steps are not prompts)
            runs = image_run_lengths(input_ids, self.config.image_token_id).numel()
            if runs:
                raise ValueError(
                    f"The input ids hold {runs} run(s) of image tokens (id {self.config.image_token_id}) but no "
                    "pixel_values were given: pass the images too (e.g. processor(images=..., text=...))."
                )
        outputs = self.language_model(
            attention_mask=attention_mask,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            **kwargs,
        )
        return MqtLlavaModelOutputWithPast(**outputs, image_hidden_states=image_features)


class MqtLlavaForConditionalGeneration(MqtLlavaPreTrainedModel, GenerationMixin):
    """MQT-LLaVA with a language-modeling head. `generate(..., num_visual_tokens=m)` picks the token budget."""

    _tied_weights_keys = {"lm_head.weight": "model.language_model.embed_tokens.weight"}

    def __init__(self, config: MqtLlavaConfig):
        super().__init__(config)
        self.model = MqtLlavaModel(config)
        self.lm_head = nn.Linear(config.text_config.hidden_size, config.text_config.vocab_size, bias=False)
        self.post_init()
        self.generation_config = self.default_generation_config(config)

    @staticmethod
    def default_generation_config(config: MqtLlavaConfig) -> GenerationConfig:
        """A generation config built explicitly (never `_from_model_config`, which would drop `num_visual_tokens`)."""
        text = config.text_config
        return GenerationConfig(
            bos_token_id=text.bos_token_id,
            eos_token_id=text.eos_token_id,
            pad_token_id=text.pad_token_id,
            num_visual_tokens=None,
        )

    def get_input_embeddings(self) -> nn.Module:
        return self.model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.model.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Module:
        return self.lm_head

    def set_output_embeddings(self, value: nn.Module) -> None:
        self.lm_head = value

    def get_image_features(
        self, pixel_values: torch.FloatTensor, num_visual_tokens: int | None = None
    ) -> torch.FloatTensor:
        """pixel_values (B, 3, H, W) -> visual tokens (B, m, H_text)."""
        return self.model.get_image_features(pixel_values, num_visual_tokens)

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        pixel_values: torch.FloatTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs,
    ) -> MqtLlavaCausalLMOutputWithPast:
        """Labels (B, L) at image-token positions are ignored, whatever they hold. Cache arguments go in `kwargs`."""
        outputs = self.model(
            input_ids=input_ids,
            pixel_values=pixel_values,
            attention_mask=attention_mask,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            **kwargs,
        )
        hidden_states = outputs.last_hidden_state
        keep = slice(-logits_to_keep, None) if isinstance(logits_to_keep, int) else logits_to_keep
        logits = self.lm_head(hidden_states[:, keep, :])
        loss = None
        if labels is not None:
            if input_ids is not None:
                labels = labels.masked_fill(input_ids == self.config.image_token_id, -100)
            loss = self.loss_function(logits=logits, labels=labels, vocab_size=self.config.text_config.vocab_size, **kwargs)
        passed_on = {key: value for key, value in outputs.items() if key != "last_hidden_state"}
        return MqtLlavaCausalLMOutputWithPast(loss=loss, logits=logits, **passed_on)

    def resize_image_runs(
        self, input_ids: torch.LongTensor, attention_mask: torch.Tensor | None, num_visual_tokens: int
    ) -> tuple[torch.LongTensor, torch.Tensor]:
        """Rewrites every image-token run to length m and re-pads the batch on the left.

        input_ids (B, L), attention_mask (B, L) -> (B, L'), (B, L'). Padding is read from the attention mask.
        """
        image_id = self.config.image_token_id
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        rows = []
        for ids, mask in zip(input_ids, attention_mask):
            ids = ids[mask.bool()]
            is_image = ids == image_id
            is_start = is_image.clone()
            is_start[1:] &= ~is_image[:-1]
            # keep text tokens, replace each run by m copies placed at the position of its first token
            repeats = torch.where(is_start, num_visual_tokens, torch.where(is_image, 0, 1))
            rows.append(torch.repeat_interleave(ids, repeats))
        length = max(len(row) for row in rows)
        # padding is masked out and these ids never leave `generate` (the caller's ids are returned), so any id does
        new_ids = input_ids.new_zeros((len(rows), length))
        new_mask = attention_mask.new_zeros((len(rows), length))
        for i, row in enumerate(rows):
            new_ids[i, length - len(row) :] = row
            new_mask[i, length - len(row) :] = 1
        return new_ids, new_mask

    def resolve_num_visual_tokens(
        self, num_visual_tokens: int | str | None, generation_config: GenerationConfig | None
    ) -> int | str | None:
        """The m `generate` uses: the call argument, else a non-null `generation_config.num_visual_tokens`, else None
        (every image keeps the run the processor gave it). `"auto"` is returned as is (see `adaptive_budget.py`)."""
        name = "num_visual_tokens"
        if num_visual_tokens is None:
            config = generation_config if generation_config is not None else self.generation_config
            num_visual_tokens = getattr(config, "num_visual_tokens", None)
            name = "generation_config.num_visual_tokens"
        if num_visual_tokens is None or num_visual_tokens == AUTO:
            return num_visual_tokens
        return check_num_visual_tokens(num_visual_tokens, self.config.num_queries, name)

    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        num_visual_tokens: int | str | None = None,
        generation_config: GenerationConfig | None = None,
        auto_budget_schedule: str | list[int | str] | None = None,
        auto_confidence_rule: str | None = None,
        auto_confidence_threshold: float | None = None,
        **kwargs,
    ):
        """`GenerationMixin.generate` with a token budget.

        m is resolved as: `num_visual_tokens=` here, else `generation_config.num_visual_tokens` when not null, else
        the runs the processor made. When m differs from a run, the runs are rewritten to length m (batch re-padded on
        the left) before decoding. The returned sequences start with the caller's own `input_ids`.

        `num_visual_tokens="auto"` answers each prompt at the first budget of a schedule whose answer is confident
        enough (the `auto_*` arguments, else the generation config's, else the defaults of `adaptive_budget.py`); with
        `return_dict_in_generate=True` the output also says which m answered each prompt.
        """
        m = self.resolve_num_visual_tokens(num_visual_tokens, generation_config)
        config = generation_config if generation_config is not None else self.generation_config
        if m == AUTO:
            settings = resolve_settings(
                self.config.num_queries, config, auto_budget_schedule, auto_confidence_rule, auto_confidence_threshold
            )
            return_dict = kwargs.pop("return_dict_in_generate", getattr(config, "return_dict_in_generate", False))
            return generate_with_auto_budget(
                self,
                super().generate,
                input_ids,
                attention_mask,
                kwargs.pop("pixel_values", None),
                settings,
                generation_config,
                bool(return_dict),
                **kwargs,
            )
        given = {"auto_budget_schedule": auto_budget_schedule, "auto_confidence_rule": auto_confidence_rule,
                 "auto_confidence_threshold": auto_confidence_threshold}  # fmt: skip
        if any(value is not None for value in given.values()):
            names = ", ".join(name for name, value in given.items() if value is not None)
            raise ValueError(f'{names} only apply with num_visual_tokens="auto", got num_visual_tokens={m!r}')
        prompt_ids, prompt_mask = input_ids, attention_mask
        if m is not None and input_ids is not None:
            if bool((image_run_lengths(input_ids, self.config.image_token_id) != m).any()):
                prompt_ids, prompt_mask = self.resize_image_runs(input_ids, attention_mask, m)
        outputs = super().generate(
            input_ids=prompt_ids, attention_mask=prompt_mask, generation_config=generation_config, **kwargs
        )
        if prompt_ids is input_ids:
            return outputs
        # the decoded part follows the rewritten prompt: put the caller's own ids back in front of it
        sequences = outputs if isinstance(outputs, torch.Tensor) else outputs.sequences
        prompts = input_ids.to(sequences.device).repeat_interleave(sequences.shape[0] // input_ids.shape[0], dim=0)
        sequences = torch.cat([prompts, sequences[:, prompt_ids.shape[1] :]], dim=1)
        if isinstance(outputs, torch.Tensor):
            return sequences
        outputs.sequences = sequences
        return outputs

    def save_pretrained(self, save_directory: str | os.PathLike, *args, **kwargs) -> None:
        """`PreTrainedModel.save_pretrained`, refusing first a `generation_config.num_visual_tokens` that is neither
        null, `"auto"` nor in 1..M, or `"auto"` settings that do not parse (saved, they would fail only at the next
        `generate`)."""
        if self.resolve_num_visual_tokens(None, self.generation_config) == AUTO:
            resolve_settings(self.config.num_queries, self.generation_config)
        return super().save_pretrained(save_directory, *args, **kwargs)


# Saved folders carry this file, its imports and an `auto_map` entry, so they load with `trust_remote_code=True`.
MqtLlavaModel.register_for_auto_class("AutoModel")
MqtLlavaForConditionalGeneration.register_for_auto_class("AutoModelForImageTextToText")

__all__ = ["MqtLlavaPreTrainedModel", "MqtLlavaModel", "MqtLlavaForConditionalGeneration"]
