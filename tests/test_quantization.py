"""bitsandbytes 4-bit loading (on CPU): the documented skip list keeps the vision tower and the query transformer in
full precision; short part names, which transformers would match to nothing, are refused with the names that work."""

from __future__ import annotations

import json

import pytest
import torch
from bitsandbytes.nn import Linear4bit
from transformers import AutoModel, BitsAndBytesConfig

from conftest import REPO_ROOT
from mqt_llava import MqtLlavaForConditionalGeneration, MqtLlavaProcessor
from mqt_llava.tools.testing import make_image
from mqt_llava.training.sft import UNQUANTIZED_MODULES


def four_bit_layers(model: torch.nn.Module) -> list[str]:
    return [name for name, module in model.named_modules() if isinstance(module, Linear4bit)]


def test_documented_skip_list_quantizes_only_the_language_model(tiny_model_dir):
    """Protects the QLoRA setting users copy from the README: with llm_int8_skip_modules=UNQUANTIZED_MODULES every
    4-bit layer is in the language model (vision tower, query transformer and lm_head stay full precision), and the
    quantized model still answers."""
    assert json.dumps(UNQUANTIZED_MODULES) in (REPO_ROOT / "README.md").read_text()
    config = BitsAndBytesConfig(load_in_4bit=True, llm_int8_skip_modules=UNQUANTIZED_MODULES)
    model = MqtLlavaForConditionalGeneration.from_pretrained(tiny_model_dir, quantization_config=config).eval()
    four_bit = four_bit_layers(model)
    assert four_bit and all(name.startswith("model.language_model.") for name in four_bit)
    full_precision = [name for name, module in model.named_modules() if type(module) is torch.nn.Linear]
    assert any(name.startswith("model.vision_tower.") for name in full_precision)
    assert any(name.startswith("model.query_transformer.") for name in full_precision)
    assert "lm_head" in full_precision
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "what is in the image ?"}]}]
    processor = MqtLlavaProcessor.from_pretrained(tiny_model_dir)
    inputs = processor.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt",
        processor_kwargs={"images": [make_image(5)], "num_visual_tokens": 4},
    )  # fmt: skip
    output = model.generate(**inputs, max_new_tokens=3, do_sample=False)
    assert output.shape[1] == inputs["input_ids"].shape[1] + 3


def test_short_part_names_are_refused_with_the_full_names(tiny_model_dir):
    """Protects against a silent full quantization: "vision_tower" / "query_transformer" match no layer of the
    generation model, so loading refuses them and names the list that works."""
    config = BitsAndBytesConfig(load_in_4bit=True, llm_int8_skip_modules=["vision_tower", "query_transformer", "lm_head"])
    with pytest.raises(ValueError) as error:
        MqtLlavaForConditionalGeneration.from_pretrained(tiny_model_dir, quantization_config=config)
    message = str(error.value)
    assert "'vision_tower' matches no layer" in message and "'model.vision_tower'" in message
    assert str(UNQUANTIZED_MODULES) in message


def test_short_part_names_work_on_the_base_model(tiny_model_dir):
    """Protects AutoModel users: on MqtLlavaModel the parts sit at the top, so the short names are the full names and
    they keep the vision tower and the query transformer unquantised."""
    config = BitsAndBytesConfig(load_in_4bit=True, llm_int8_skip_modules=["vision_tower", "query_transformer"])
    model = AutoModel.from_pretrained(tiny_model_dir, quantization_config=config, trust_remote_code=True)
    four_bit = four_bit_layers(model)
    assert four_bit and all(name.startswith("language_model.") for name in four_bit)
