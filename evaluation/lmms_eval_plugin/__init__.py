"""lmms-eval plugin: MQT-LLaVA as lmms-eval model `mqt_llava`, with `num_visual_tokens` as a model argument.

    lmms_eval --model mqt_llava --model_args pretrained=DIR,num_visual_tokens=16 --tasks pope

lmms-eval finds the model through the `lmms_eval.models` entry point this package declares (`manifest` below), or
through the older `LMMS_EVAL_PLUGINS=mqt_llava.evaluation.lmms_eval_plugin` variable (read from `models.AVAILABLE_MODELS`).
lmms-eval itself is an optional dependency; nothing here imports it until lmms-eval asks for the model.
"""

from __future__ import annotations

MODEL_NAME = "mqt_llava"
MODEL_CLASS_PATH = "mqt_llava.evaluation.lmms_eval_plugin.models.mqt_llava.MqtLlava"


def manifest():
    """The `lmms_eval.models` entry point: lmms-eval's registration record for `mqt_llava`."""
    from lmms_eval.models.registry_v2 import ModelManifest

    return ModelManifest(model_id=MODEL_NAME, simple_class_path=MODEL_CLASS_PATH)


__all__ = ["MODEL_CLASS_PATH", "MODEL_NAME", "manifest"]
