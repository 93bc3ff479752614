"""MQT-LLaVA as a vLLM model: vLLM's own vision tower and language model, this package's query transformer.

The vision tower is vLLM's CLIP or SigLIP (built only up to `vision_feature_layer`, without its final norm, as
transformers' `hidden_states[vision_feature_layer]`), the language model whatever vLLM registers for the text
config's model type (Llama, Qwen2, ...), and the query transformer the payload's own `MatryoshkaQueryTransformer`,
run with the first m queries of each image. Under tensor parallelism the tower and the language model are sharded
by vLLM; the query transformer is small and every rank holds all of it.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable

import torch
from torch import nn
from transformers import CLIPVisionConfig, SiglipVisionConfig
from vllm.config import VllmConfig
from vllm.model_executor.models.clip import CLIPVisionModel
from vllm.model_executor.models.interfaces import MultiModalEmbeddings, SupportsMultiModal, SupportsPP
from vllm.model_executor.models.siglip import SiglipVisionModel
from vllm.model_executor.models.utils import (
    AutoWeightsLoader,
    WeightsMapper,
    get_layer_index,
    init_vllm_registered_model,
    maybe_prefix,
)
from vllm.multimodal import MULTIMODAL_REGISTRY
from vllm.sequence import IntermediateTensors

from mqt_llava.modeling_mqt_llava.configuration_mqt_llava import MqtLlavaConfig
from mqt_llava.modeling_mqt_llava.query_transformer import MatryoshkaQueryTransformer

from .processing import (
    BUDGET_KWARG,
    MqtLlavaDummyInputsBuilder,
    MqtLlavaMultiModalProcessor,
    MqtLlavaProcessingInfo,
)
from .weights import CHECKPOINT_TO_VLLM_PREFIXES, vllm_name

# Vision towers vLLM implements, by transformers config class.
_VISION_TOWERS = {CLIPVisionConfig: CLIPVisionModel, SiglipVisionConfig: SiglipVisionModel}


def build_vision_tower(config: MqtLlavaConfig, quant_config, prefix: str) -> nn.Module:
    """vLLM's tower for `config.vision_config`, with layers up to `vision_feature_layer` and no final norm."""
    vision = config.vision_config
    tower_class = _VISION_TOWERS.get(type(vision))
    if tower_class is None:
        raise ValueError(
            f"vLLM serving supports CLIP and SigLIP vision towers, got {type(vision).__name__} "
            f"(model_type {vision.model_type!r})"
        )
    layers = get_layer_index(config.vision_feature_layer, vision.num_hidden_layers)
    return tower_class(
        vision, quant_config, num_hidden_layers_override=layers, require_post_norm=False, prefix=prefix
    )


def query_transformer_config(config: MqtLlavaConfig) -> MqtLlavaConfig:
    """A copy of `config` whose query transformer attends with PyTorch's SDPA (vLLM never sets transformers'
    attention implementation, and the copy keeps the served config untouched)."""
    copied = copy.deepcopy(config)
    copied._attn_implementation = "sdpa"
    return copied


@MULTIMODAL_REGISTRY.register_processor(
    MqtLlavaMultiModalProcessor, info=MqtLlavaProcessingInfo, dummy_inputs=MqtLlavaDummyInputsBuilder
)
class MqtLlavaForVllm(nn.Module, SupportsMultiModal, SupportsPP):
    """vLLM model for `MqtLlavaForConditionalGeneration` folders (architecture name of the same)."""

    hf_to_vllm_mapper = WeightsMapper(orig_to_new_prefix=CHECKPOINT_TO_VLLM_PREFIXES)

    @classmethod
    def get_placeholder_str(cls, modality: str, i: int) -> str | None:
        if modality.startswith("image"):
            return "<image>"
        raise ValueError(f"MQT-LLaVA takes images only, got modality {modality!r}")

    def __init__(self, *, vllm_config: VllmConfig, prefix: str = "") -> None:
        super().__init__()
        config: MqtLlavaConfig = vllm_config.model_config.hf_config
        self.config = config
        self.configure_mm_token_handling(
            vocab_size=config.text_config.vocab_size, mm_token_ids=[config.image_token_id]
        )
        with self._mark_tower_model(vllm_config, "image"):
            self.vision_tower = build_vision_tower(
                config, vllm_config.quant_config, prefix=maybe_prefix(prefix, "vision_tower")
            )
            self.query_transformer = MatryoshkaQueryTransformer(query_transformer_config(config))
        with self._mark_language_model(vllm_config):
            self.language_model = init_vllm_registered_model(
                vllm_config=vllm_config,
                hf_config=config.text_config,
                prefix=maybe_prefix(prefix, "language_model"),
            )
        self.make_empty_intermediate_tensors = self.language_model.make_empty_intermediate_tensors

    def embed_multimodal(self, **kwargs: object) -> MultiModalEmbeddings:
        """pixel_values (n, 3, H, W) and num_visual_tokens (n,) -> one (m_i, H_text) tensor per image.

        The images are encoded once at the largest budget of the batch; an image with a smaller m takes the first m
        tokens, which are exactly its tokens at m (queries never attend to each other).
        """
        pixel_values = kwargs.get("pixel_values")
        budgets = kwargs.get(BUDGET_KWARG)
        if pixel_values is None:
            return []
        if budgets is None:
            raise ValueError("every image needs its num_visual_tokens (set by the MQT-LLaVA multimodal processor)")
        budgets = [int(m) for m in torch.as_tensor(budgets).flatten().tolist()]
        if isinstance(pixel_values, (list, tuple)):
            pixel_values = torch.stack(list(pixel_values))
        features = self.vision_tower(
            pixel_values.to(self.vision_tower.dtype),
            feature_select_strategy=self.config.vision_feature_select_strategy,
        )  # (n, N, D_vision)
        tokens, _ = self.query_transformer(features, max(budgets))  # (n, m_max, H_text)
        return [tokens[i, :m] for i, m in enumerate(budgets)]

    def forward(
        self,
        input_ids: torch.Tensor | None,
        positions: torch.Tensor,
        intermediate_tensors: IntermediateTensors | None = None,
        inputs_embeds: torch.Tensor | None = None,
        **kwargs: object,
    ) -> torch.Tensor | IntermediateTensors:
        """The language model on the merged embeddings (vLLM has placed the visual tokens on the image runs)."""
        if intermediate_tensors is not None:
            inputs_embeds = None
        return self.language_model.model(input_ids, positions, intermediate_tensors, inputs_embeds=inputs_embeds)

    def compute_logits(self, hidden_states: torch.Tensor) -> torch.Tensor | None:
        return self.language_model.compute_logits(hidden_states)

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> set[str]:
        """Loads a saved folder's tensors as they are; an unknown tensor name is a `ValueError` naming it."""
        return AutoWeightsLoader(self).load_weights((vllm_name(name), tensor) for name, tensor in weights)


__all__ = ["MqtLlavaForVllm", "build_vision_tower"]
