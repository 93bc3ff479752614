"""Model table read by lmms-eval's `LMMS_EVAL_PLUGINS` mechanism: name -> class in `models/<name>.py`."""

AVAILABLE_MODELS = {"mqt_llava": "MqtLlava"}
