"""Hugging Face Space entry of the MQT-LLaVA web demo (`mqt-llava app`): the shipped demo model, or the model
folder or Hub id named by the MQT_LLAVA_MODEL variable. The Space sets the address through Gradio's own variables
(GRADIO_SERVER_NAME, GRADIO_SERVER_PORT)."""

import os

from mqt_llava.app.cli import serve

serve(model=os.environ.get("MQT_LLAVA_MODEL"))
