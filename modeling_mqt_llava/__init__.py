"""The remote-code payload: configuration, query transformer and model of MQT-LLaVA.

These files are what a saved folder carries for `trust_remote_code=True`; they import nothing but torch,
transformers, the standard library and each other. The processor's payload file is `processing/processing_mqt_llava.py`.
"""

from .configuration_mqt_llava import MqtLlavaConfig
from .modeling_mqt_llava import MqtLlavaForConditionalGeneration, MqtLlavaModel, MqtLlavaPreTrainedModel
from .query_transformer import MatryoshkaQueryTransformer

__all__ = [
    "MatryoshkaQueryTransformer",
    "MqtLlavaConfig",
    "MqtLlavaForConditionalGeneration",
    "MqtLlavaModel",
    "MqtLlavaPreTrainedModel",
]
