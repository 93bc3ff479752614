"""MqtLlavaProcessor: expansion of <image>, the Vicuna v1 template, assistant masks, and errors on bad input."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from mqt_llava.processing.processing_mqt_llava import VICUNA_SYSTEM_PROMPT
from mqt_llava.tools.testing import build_tiny_model, make_image


@pytest.fixture(scope="module")
def processor():
    return build_tiny_model(seed=0)[1]


def test_each_image_becomes_a_run_of_k_tokens(processor):
    """Protects the expansion: default k = M, the call argument overrides it, and a saved default is used."""
    image_id = processor.image_token_id
    text = "USER: <image>\nwhat is in the image ? ASSISTANT:"
    default = processor(images=make_image(0), text=text, return_tensors="pt")
    assert (default["input_ids"] == image_id).sum() == 16
    assert (processor(images=make_image(0), text=text, num_visual_tokens=3)["input_ids"][0].count(image_id)) == 3
    processor.num_visual_tokens = 6
    try:
        assert processor(images=make_image(0), text=text)["input_ids"][0].count(image_id) == 6
    finally:
        processor.num_visual_tokens = None
    assert default["pixel_values"].shape == (1, 3, 32, 32)


def test_saved_default_round_trips(tmp_path, processor):
    """Protects the processor's saved default budget (processor_config.json)."""
    from mqt_llava.processing.processing_mqt_llava import MqtLlavaProcessor

    processor.num_visual_tokens = 9
    try:
        processor.save_pretrained(tmp_path)
    finally:
        processor.num_visual_tokens = None
    loaded = MqtLlavaProcessor.from_pretrained(tmp_path)
    assert loaded.num_visual_tokens == 9 and loaded.num_queries == 16
    assert loaded(images=make_image(1), text="<image>")["input_ids"][0].count(loaded.image_token_id) == 9


def test_chat_template_renders_vicuna_v1(processor):
    """Protects the exact Vicuna v1 prompt string (BOS, system, spaces, </s> between exchanges)."""
    messages = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "what is this ?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "a red circle ."}]},
        {"role": "user", "content": [{"type": "text", "text": "how many ?"}]},
    ]
    rendered = processor.apply_chat_template(messages, add_generation_prompt=True)
    assert rendered == (
        "<s>" + VICUNA_SYSTEM_PROMPT + " USER: <image>\nwhat is this ? ASSISTANT: a red circle .</s>USER: how many ? ASSISTANT:"
    )
    custom = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]
    assert processor.apply_chat_template(custom, add_generation_prompt=True) == "<s>Be brief. USER: hi ASSISTANT:"


def test_assistant_mask_lines_up_with_expanded_runs(processor):
    """Protects training masks: with <image> expanded to k tokens, the assistant mask covers exactly the answer and
    its </s>, never an image token or a user turn."""
    messages = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "what is this ?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "a red circle"}]},
    ]
    out = processor.apply_chat_template(
        messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True, return_tensors="pt",
        processor_kwargs={"images": [make_image(2)], "num_visual_tokens": 5},
    )
    ids, mask = out["input_ids"][0], out["assistant_masks"][0].bool()
    assert (ids == processor.image_token_id).sum() == 5
    answer = processor.tokenizer("a red circle</s>", add_special_tokens=False)["input_ids"]
    assert ids[mask].tolist() == answer


def test_image_count_mismatch_names_both_counts(processor):
    """Protects the count check: two <image> placeholders and one image -> an error stating 2 and 1."""
    with pytest.raises(ValueError, match=r"2 <image> tokens and 1 images"):
        processor(images=[make_image(3)], text="<image> and <image>")


def test_truncation_through_an_image_run_is_an_error(processor):
    """Protects image runs from being cut: truncating inside a run raises instead of silently losing tokens."""
    text = "USER: <image>\nwhat is in the image ? ASSISTANT:"
    with pytest.raises(ValueError, match="image"):
        processor(images=make_image(4), text=text, truncation=True, max_length=10)


def test_corrupt_image_file_is_named(tmp_path, processor):
    """Protects error reporting: an unreadable image file raises a ValueError naming the file."""
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nthis is not an image")
    with pytest.raises(ValueError, match="broken.png"):
        processor(images=[str(bad)], text="<image>")


def test_image_paths_are_accepted(tmp_path, processor):
    """Protects loading by path: a file on disk gives the same pixels as the PIL image."""
    path = tmp_path / "ok.png"
    make_image(5).save(path)
    from_path = processor(images=[str(path)], text="<image>", return_tensors="pt")["pixel_values"]
    from_pil = processor(images=[make_image(5)], text="<image>", return_tensors="pt")["pixel_values"]
    torch.testing.assert_close(from_path, from_pil)


def test_rendered_prompt_gets_exactly_one_bos(processor):
    """Protects tokenisation of template output: a prompt that already starts with <s> gets no second BOS, while a
    raw prompt gets one, as a Llama tokenizer would add."""
    bos = processor.tokenizer.bos_token_id
    rendered = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "what ?"}]}], add_generation_prompt=True
    )
    ids = processor(images=make_image(6), text=rendered)["input_ids"][0]
    assert ids[0] == bos and ids[1] != bos
    raw = processor(images=make_image(6), text="USER: <image>\nwhat ? ASSISTANT:")["input_ids"][0]
    assert raw[0] == bos and raw[1] != bos


def test_concurrent_calls_keep_their_own_budgets(processor):
    """Protects per-call budgets through transformers' replace_image_token hook: calls with different
    num_visual_tokens running at once in several threads each get runs of their own length, and outside a call the
    hook gives the saved default (M here)."""
    image_id, text = processor.image_token_id, "USER: <image>\nwhat is in the image ? ASSISTANT:"
    image = make_image(4)

    def count(k: int) -> tuple[int, int]:
        return k, processor(images=image, text=text, num_visual_tokens=k)["input_ids"][0].count(image_id)

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(count, [1, 5, 9, 16] * 6))
    assert all(k == found for k, found in results), results
    assert processor.replace_image_token({}, 0) == processor.image_token * 16
