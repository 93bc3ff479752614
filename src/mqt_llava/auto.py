"""Registers MQT-LLaVA with transformers' Auto classes.

    import mqt_llava.auto
    model = AutoModelForImageTextToText.from_pretrained("path/to/mqt-llava-folder")  # no trust_remote_code needed

After this import `AutoConfig`, `AutoModel`, `AutoModelForImageTextToText` and `AutoProcessor` build this package's
classes for `model_type: mqt_llava`. Using any public name of `mqt_llava` (e.g. `from mqt_llava import
MqtLlavaForConditionalGeneration`) imports this module too.
"""

from transformers import AutoConfig, AutoModel, AutoModelForImageTextToText, AutoProcessor

from mqt_llava.modeling_mqt_llava import (
    MatryoshkaQueryTransformer,
    MqtLlavaConfig,
    MqtLlavaForConditionalGeneration,
    MqtLlavaModel,
    MqtLlavaPreTrainedModel,
)
from mqt_llava.processing.processing_mqt_llava import MqtLlavaProcessor

AutoConfig.register(MqtLlavaConfig.model_type, MqtLlavaConfig, exist_ok=True)
AutoModel.register(MqtLlavaConfig, MqtLlavaModel, exist_ok=True)
AutoModelForImageTextToText.register(MqtLlavaConfig, MqtLlavaForConditionalGeneration, exist_ok=True)
AutoProcessor.register(MqtLlavaConfig, MqtLlavaProcessor, exist_ok=True)

__all__ = [
    "MatryoshkaQueryTransformer",
    "MqtLlavaConfig",
    "MqtLlavaForConditionalGeneration",
    "MqtLlavaModel",
    "MqtLlavaPreTrainedModel",
    "MqtLlavaProcessor",
]
