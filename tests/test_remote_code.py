"""Hub-native packaging: remote code in a fresh subprocess, the image-text-to-text pipeline, a clean payload."""

from __future__ import annotations

import ast
import sys

import pytest
import torch
from transformers import pipeline

from conftest import REPO_ROOT, run_isolated
from mqt_llava import MqtLlavaForConditionalGeneration, MqtLlavaProcessor
from mqt_llava.tools.testing import make_image

PAYLOAD = [
    REPO_ROOT / "modeling_mqt_llava" / "adaptive_budget.py",
    REPO_ROOT / "modeling_mqt_llava" / "auto_generation.py",
    REPO_ROOT / "modeling_mqt_llava" / "configuration_mqt_llava.py",
    REPO_ROOT / "modeling_mqt_llava" / "modeling_mqt_llava.py",
    REPO_ROOT / "modeling_mqt_llava" / "query_transformer.py",
    REPO_ROOT / "processing" / "processing_mqt_llava.py",
]


def chat(text: str, image=None) -> list[dict]:
    content = [{"type": "image", "image": image} if image is not None else {"type": "image"}, {"type": "text", "text": text}]
    return [{"role": "user", "content": content}]


def test_saved_folder_carries_remote_code(tiny_model_dir):
    """Protects registration for trust_remote_code: auto_map entries and every payload file are in the folder."""
    config = (tiny_model_dir / "config.json").read_text()
    for entry in ("AutoConfig", "AutoModel\"", "AutoModelForImageTextToText", "AutoProcessor"):
        assert entry in config
    assert "AutoProcessor" in (tiny_model_dir / "processor_config.json").read_text()
    for path in PAYLOAD:
        assert (tiny_model_dir / path.name).read_text() == path.read_text()


def test_fresh_subprocess_loads_remote_code_with_identical_outputs(tiny_model_dir, tmp_path):
    """Protects the Hub-native path: a process that cannot import this repository loads the folder through
    AutoConfig / AutoModelForImageTextToText / AutoProcessor (trust_remote_code) and gets identical logits and
    identical greedy generations."""
    image_path = tmp_path / "image.png"
    make_image(21, (40, 28)).save(image_path)
    model = MqtLlavaForConditionalGeneration.from_pretrained(tiny_model_dir).eval()
    processor = MqtLlavaProcessor.from_pretrained(tiny_model_dir)
    inputs = processor.apply_chat_template(
        chat("what is in the image ?"), add_generation_prompt=True, tokenize=True, return_dict=True,
        return_tensors="pt", processor_kwargs={"images": [str(image_path)], "num_visual_tokens": 7},
    )
    with torch.no_grad():
        logits = model(**inputs).logits[0, -1].tolist()
    generated = model.generate(**inputs, max_new_tokens=8, do_sample=False, num_visual_tokens=3)[0].tolist()
    result = run_isolated(
        f"""
        import json, torch
        from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor
        folder = {str(tiny_model_dir)!r}
        config = AutoConfig.from_pretrained(folder, trust_remote_code=True)
        model = AutoModelForImageTextToText.from_pretrained(folder, trust_remote_code=True).eval()
        processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
        messages = [{{"role": "user", "content": [{{"type": "image"}}, {{"type": "text", "text": "what is in the image ?"}}]}}]
        inputs = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True,
            return_tensors="pt", processor_kwargs={{"images": [{str(image_path)!r}], "num_visual_tokens": 7}})
        with torch.no_grad():
            logits = model(**inputs).logits[0, -1].tolist()
        generated = model.generate(**inputs, max_new_tokens=8, do_sample=False, num_visual_tokens=3)[0].tolist()
        json.dump({{"classes": [type(config).__module__, type(model).__module__, type(processor).__module__],
                   "logits": logits, "generated": generated}}, open(RESULT_PATH, "w"))
        """,
        tmp_path,
    )
    assert all(module.startswith("transformers_modules.") for module in result["classes"]), result["classes"]
    assert result["logits"] == logits
    assert result["generated"] == generated


@pytest.mark.parametrize("m", [None, 3])
def test_pipeline_honours_num_visual_tokens_and_strips_the_prompt(tiny_model_dir, m):
    """Protects pipeline("image-text-to-text"): with and without generate_kwargs={"num_visual_tokens": m} the
    language model receives m (default M) visual tokens, and return_full_text=False gives only the answer, equal
    to decoding the new tokens of a direct generate call."""
    pipe = pipeline("image-text-to-text", model=str(tiny_model_dir), trust_remote_code=True)
    seen = []
    hook = pipe.model.model.language_model.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(kwargs["inputs_embeds"].shape[1]), with_kwargs=True
    )
    image = make_image(22)
    generate_kwargs = {"max_new_tokens": 5, "do_sample": False}
    if m is not None:
        generate_kwargs["num_visual_tokens"] = m
    try:
        output = pipe(text=chat("what is in the image ?", image), return_full_text=False, generate_kwargs=generate_kwargs)
    finally:
        hook.remove()
    processor = pipe.processor
    inputs = processor.apply_chat_template(
        chat("what is in the image ?"), add_generation_prompt=True, tokenize=True, return_dict=True,
        return_tensors="pt", processor_kwargs={"images": [image]},
    )
    expected_tokens = 16 if m is None else m
    assert seen[0] == inputs["input_ids"].shape[1] - 16 + expected_tokens
    sequences = pipe.model.generate(**inputs, **generate_kwargs)
    answer = processor.decode(sequences[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    text = output[0]["generated_text"]
    assert text.strip() == answer.strip() and text.strip()
    assert "USER" not in text and "curious" not in text


def test_payload_imports_only_torch_transformers_and_stdlib():
    """Protects the remote-code contract: shipped files import nothing but torch, transformers, the standard
    library and each other (relative imports)."""
    allowed = set(sys.stdlib_module_names) | {"torch", "transformers"}
    for path in PAYLOAD:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                roots = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                roots = [] if node.level > 0 else [node.module.split(".")[0]]
            else:
                continue
            assert set(roots) <= allowed, f"{path.name} imports {roots}"


def test_saved_processor_pads_batches_for_generation(tiny_model_dir):
    """Protects batched generation from a saved folder: the processor pads on the left by default, so a batch of
    prompts of different lengths is answered exactly as each prompt alone."""
    model = MqtLlavaForConditionalGeneration.from_pretrained(tiny_model_dir).eval()
    processor = MqtLlavaProcessor.from_pretrained(tiny_model_dir)
    prompts = [
        processor.apply_chat_template(chat(question), add_generation_prompt=True)
        for question in ("what is in the image ?", "how many shapes are there in the picture ?")
    ]
    images = [make_image(31), make_image(32)]
    settings = {"max_new_tokens": 3, "do_sample": False, "output_scores": True, "return_dict_in_generate": True}
    batch = processor(images=images, text=prompts, padding=True, return_tensors="pt")
    batched = model.generate(**batch, **settings)
    for i in range(2):
        alone = model.generate(**processor(images=[images[i]], text=[prompts[i]], return_tensors="pt"), **settings)
        for ours, theirs in zip(batched.scores, alone.scores):
            torch.testing.assert_close(ours[i], theirs[0], rtol=1e-4, atol=1e-4)


def test_shipped_demo_model_carries_the_current_remote_code():
    """Protects the shipped demo folder from going stale: its remote-code files are the repository's payload files,
    so a fix to the model (e.g. for a new transformers release) reaches users who load the shipped model."""
    shipped = REPO_ROOT / "evaluation" / "assets" / "mqt-llava-tiny"
    for path in PAYLOAD:
        assert (shipped / path.name).read_text() == path.read_text(), f"{path.name} differs in {shipped}"
