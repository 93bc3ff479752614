"""The `vllm.general_plugins` hook: makes MQT-LLaVA folders servable by vLLM. Safe to run any number of times.

vLLM runs `register()` in every one of its processes (API server, engine core, workers). It registers:

- the configuration and the processor with transformers' Auto classes, so a folder loads without
  `trust_remote_code` (the folder's remote code still works for those who pass it);
- `MqtLlavaForVllm` with vLLM's model registry under the architecture name the folders carry;
- on machines without torchvision (CPU installs), transformers' PIL Pixtral image processor in place of the
  torchvision one that vLLM's built-in LLaVA module imports, so that built-in LLaVA models load there too.
"""

from __future__ import annotations

import importlib.util
import logging
import sys

logger = logging.getLogger(__name__)

ARCHITECTURE = "MqtLlavaForConditionalGeneration"
MODEL_CLASS = "mqt_llava.serving.model:MqtLlavaForVllm"
_PIXTRAL_TORCHVISION_MODULE = "transformers.models.pixtral.image_processing_pixtral"
_PIXTRAL_PIL_MODULE = "transformers.models.pixtral.image_processing_pil_pixtral"


def _register_with_transformers() -> None:
    from transformers import AutoConfig, AutoProcessor

    from mqt_llava.modeling_mqt_llava.configuration_mqt_llava import MqtLlavaConfig
    from mqt_llava.processing.processing_mqt_llava import MqtLlavaProcessor

    AutoConfig.register(MqtLlavaConfig.model_type, MqtLlavaConfig, exist_ok=True)
    AutoProcessor.register(MqtLlavaConfig, MqtLlavaProcessor, exist_ok=True)


def _use_pil_pixtral_without_torchvision() -> None:
    """Points the torchvision Pixtral image-processor module at its PIL twin when torchvision is absent."""
    if _PIXTRAL_TORCHVISION_MODULE in sys.modules or importlib.util.find_spec("torchvision") is not None:
        return
    if importlib.util.find_spec(_PIXTRAL_PIL_MODULE) is None:
        return
    sys.modules[_PIXTRAL_TORCHVISION_MODULE] = importlib.import_module(_PIXTRAL_PIL_MODULE)
    logger.debug("torchvision is not installed: %s stands in for %s", _PIXTRAL_PIL_MODULE, _PIXTRAL_TORCHVISION_MODULE)


def register() -> None:
    """Registers MQT-LLaVA with transformers and vLLM (idempotent)."""
    from vllm import ModelRegistry

    _use_pil_pixtral_without_torchvision()
    _register_with_transformers()
    if ARCHITECTURE not in ModelRegistry.get_supported_archs():
        ModelRegistry.register_model(ARCHITECTURE, MODEL_CLASS)


__all__ = ["ARCHITECTURE", "register"]
