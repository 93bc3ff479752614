"""vLLM's multimodal processing for MQT-LLaVA: each image becomes a run of m image tokens, m chosen per request.

A request names its budget with `mm_processor_kwargs={"num_visual_tokens": m}` (`LLM.generate`, `LLM.chat`, or an
OpenAI request to a server started with `--trust-request-mm-kwargs`); without it the folder's default applies:
`generation_config.num_visual_tokens` when not null, else the processor's saved `num_visual_tokens`, else M. vLLM
hands these kwargs to `_call_hf_processor`, `_get_mm_fields_config` and `_get_prompt_updates` and puts them in the
multimodal cache key, so the same image at two budgets is processed and encoded twice, never mixed up. Every image
carries its m to the model as the `num_visual_tokens` field, so one batch may mix budgets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cached_property

import torch
from transformers import BatchFeature
from vllm.config.multimodal import MultiModalDummyOptions
from vllm.inputs import MultiModalDataDict
from vllm.multimodal.inputs import MultiModalFieldConfig, MultiModalKwargsItems
from vllm.multimodal.parse import ImageSize, MultiModalDataItems
from vllm.multimodal.processing import (
    BaseDummyInputsBuilder,
    BaseMultiModalProcessor,
    BaseProcessingInfo,
    PromptReplacement,
    PromptUpdate,
)
from vllm.multimodal.processing.inputs import ProcessorInputs

from mqt_llava.modeling_mqt_llava.configuration_mqt_llava import MqtLlavaConfig, check_num_visual_tokens
from mqt_llava.processing.processing_mqt_llava import MqtLlavaProcessor

BUDGET_KWARG = "num_visual_tokens"


class MqtLlavaProcessingInfo(BaseProcessingInfo):
    """What vLLM needs to know about an MQT-LLaVA folder: its config, its processor, and the budget rules."""

    def get_hf_config(self) -> MqtLlavaConfig:
        return self.ctx.get_hf_config(MqtLlavaConfig)

    def get_hf_processor(self, **kwargs: object) -> MqtLlavaProcessor:
        # the budget is a call argument of the processor, never a construction one (one cached processor serves all)
        kwargs.pop(BUDGET_KWARG, None)
        return self.ctx.get_hf_processor(MqtLlavaProcessor, **kwargs)

    def get_supported_mm_limits(self) -> Mapping[str, int | None]:
        return {"image": None}

    @cached_property
    def default_num_visual_tokens(self) -> int:
        """m when a request names none: `generation_config.num_visual_tokens` if not null, else the processor's."""
        num_queries = self.get_hf_config().num_queries
        saved = self.ctx.model_config.try_get_generation_config().get(BUDGET_KWARG)
        if saved is not None:
            return check_num_visual_tokens(saved, num_queries, "generation_config.num_visual_tokens")
        return self.get_hf_processor().default_run_length

    def num_visual_tokens(self, hf_processor_mm_kwargs: Mapping[str, object]) -> int:
        """The budget of a request: its `num_visual_tokens` (checked: an integer in 1..M), else the folder's default."""
        requested = hf_processor_mm_kwargs.get(BUDGET_KWARG)
        if requested is None:
            return self.default_num_visual_tokens
        return check_num_visual_tokens(requested, self.get_hf_config().num_queries)

    def get_image_size(self) -> ImageSize:
        side = self.get_hf_config().vision_config.image_size
        return ImageSize(width=side, height=side)

    def get_mm_max_tokens_per_item(self, seq_len: int, mm_counts: Mapping[str, int]) -> Mapping[str, int]:
        return {"image": self.get_hf_config().num_queries}


class MqtLlavaDummyInputsBuilder(BaseDummyInputsBuilder[MqtLlavaProcessingInfo]):
    """Profiling inputs: `<image>` placeholders and blank images at the tower's size (processed at the default m;
    the memory profile uses `get_mm_max_tokens_per_item`, M tokens per image)."""

    def get_dummy_text(self, mm_counts: Mapping[str, int]) -> str:
        return self.info.get_hf_processor().image_token * mm_counts.get("image", 0)

    def get_dummy_mm_data(
        self, seq_len: int, mm_counts: Mapping[str, int], mm_options: MultiModalDummyOptions
    ) -> MultiModalDataDict:
        size = self.info.get_image_size()
        images = self._get_dummy_images(
            width=size.width, height=size.height, num_images=mm_counts.get("image", 0), overrides=mm_options.get("image")
        )
        return {"image": images}


class MqtLlavaMultiModalProcessor(BaseMultiModalProcessor[MqtLlavaProcessingInfo]):
    """Runs the folder's image processor and turns each image placeholder into a run of m image tokens."""

    def apply(self, inputs: ProcessorInputs, *args, **kwargs):
        # refuse a bad budget before anything is processed or cached, with the message of the model's own check
        self.info.num_visual_tokens(inputs.hf_processor_mm_kwargs)
        return super().apply(inputs, *args, **kwargs)

    def _call_hf_processor(self, hf_data: Mapping[str, object], hf_kwargs: Mapping[str, object]) -> BatchFeature:
        """Images -> `pixel_values` (n, 3, H, W) and `num_visual_tokens` (n,), every image at this request's m."""
        m = self.info.num_visual_tokens(hf_kwargs)
        processed = self.info.ctx.call_hf_processor(
            self.info.get_hf_processor(), hf_data, {**hf_kwargs, BUDGET_KWARG: m}
        )
        processed[BUDGET_KWARG] = torch.full((len(processed["pixel_values"]),), m, dtype=torch.long)
        return processed

    def _get_mm_fields_config(
        self, hf_inputs: BatchFeature, hf_processor_mm_kwargs: Mapping[str, object]
    ) -> Mapping[str, MultiModalFieldConfig]:
        return {
            "pixel_values": MultiModalFieldConfig.batched("image"),
            BUDGET_KWARG: MultiModalFieldConfig.batched("image"),
        }

    def _get_prompt_updates(
        self,
        mm_items: MultiModalDataItems,
        hf_processor_mm_kwargs: Mapping[str, object],
        out_mm_kwargs: MultiModalKwargsItems,
    ) -> Sequence[PromptUpdate]:
        image_token_id = self.info.get_hf_config().image_token_id
        m = self.info.num_visual_tokens(hf_processor_mm_kwargs)
        return [PromptReplacement(modality="image", target=[image_token_id], replacement=[image_token_id] * m)]


__all__ = ["MqtLlavaDummyInputsBuilder", "MqtLlavaMultiModalProcessor", "MqtLlavaProcessingInfo"]
