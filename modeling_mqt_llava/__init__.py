"""MQT-LLaVA as a Hugging Face model package.

Importing this package registers the config, the models and the processor with the Auto classes, and marks them so
that every saved folder carries its remote code (`auto_map` plus the payload files).
"""

from transformers import AutoConfig, AutoModel, AutoModelForImageTextToText, AutoProcessor

from processing.processing_mqt_llava import MqtLlavaProcessor

from .configuration_mqt_llava import MqtLlavaConfig
from .modeling_mqt_llava import MqtLlavaForConditionalGeneration, MqtLlavaModel, MqtLlavaPreTrainedModel
from .query_transformer import MatryoshkaQueryTransformer

AutoConfig.register(MqtLlavaConfig.model_type, MqtLlavaConfig, exist_ok=True)
AutoModel.register(MqtLlavaConfig, MqtLlavaModel, exist_ok=True)
AutoModelForImageTextToText.register(MqtLlavaConfig, MqtLlavaForConditionalGeneration, exist_ok=True)
AutoProcessor.register(MqtLlavaConfig, MqtLlavaProcessor, exist_ok=True)

MqtLlavaConfig.register_for_auto_class("AutoConfig")
MqtLlavaModel.register_for_auto_class("AutoModel")
MqtLlavaForConditionalGeneration.register_for_auto_class("AutoModelForImageTextToText")
MqtLlavaProcessor.register_for_auto_class("AutoProcessor")

__all__ = [
    "MatryoshkaQueryTransformer",
    "MqtLlavaConfig",
    "MqtLlavaForConditionalGeneration",
    "MqtLlavaModel",
    "MqtLlavaPreTrainedModel",
    "MqtLlavaProcessor",
]
