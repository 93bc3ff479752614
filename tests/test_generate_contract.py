"""The num_visual_tokens contract of docs/architecture.md §4: runs, resolution order, rewriting, prefill-only vision."""

from __future__ import annotations

import pytest
import torch

from mqt_llava import MqtLlavaForConditionalGeneration
from mqt_llava.tools.testing import build_tiny_model, make_image

QUESTION = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "what is in the image ?"}]}]


@pytest.fixture(scope="module")
def tiny():
    return build_tiny_model(seed=0)


def encode(processor, images, questions=None, k=None):
    prompts = [
        processor.apply_chat_template(
            [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": q}]}], add_generation_prompt=True
        )
        for q in (questions or ["what is in the image ?"] * len(images))
    ]
    return processor(
        images=images, text=prompts, num_visual_tokens=k, padding=True, padding_side="left",
        add_special_tokens=False, return_tensors="pt",
    )


class LanguageModelSpy:
    """Records the sequence length the language model receives at each call (prefill first)."""

    def __init__(self, model: MqtLlavaForConditionalGeneration):
        self.lengths: list[int] = []
        self.handle = model.model.language_model.register_forward_pre_hook(self.hook, with_kwargs=True)

    def hook(self, module, args, kwargs):
        self.lengths.append(kwargs["inputs_embeds"].shape[1])

    def close(self):
        self.handle.remove()


def greedy(model, inputs, **kwargs):
    return model.generate(
        **inputs, max_new_tokens=6, do_sample=False, output_scores=True, return_dict_in_generate=True, **kwargs
    )


def test_mixed_run_lengths_in_one_batch_match_single_images(tiny):
    """Protects per-image m read from run lengths: one batch mixing runs of 3 and 11 gives each row the logits it
    gets alone."""
    model, processor = tiny
    images = [make_image(1), make_image(2)]
    # Two images in one sequence, with different budgets.
    single_a = processor(images=[images[0]], text=["USER: <image>\nleft"], num_visual_tokens=3, return_tensors="pt")
    single_b = processor(images=[images[1]], text=["USER: <image>\nright"], num_visual_tokens=11, return_tensors="pt")
    mixed_ids = torch.cat([single_a["input_ids"], single_b["input_ids"][:, 1:]], dim=1)
    pixels = torch.cat([single_a["pixel_values"], single_b["pixel_values"]])
    with torch.no_grad():
        mixed = model(input_ids=mixed_ids, pixel_values=pixels)
        tokens_a = model.get_image_features(single_a["pixel_values"], 3)
        tokens_b = model.get_image_features(single_b["pixel_values"], 11)
        embeds = model.get_input_embeddings()(mixed_ids)
        image_positions = (mixed_ids[0] == model.config.image_token_id).nonzero().flatten()
        embeds[0, image_positions] = torch.cat([tokens_a[0], tokens_b[0]])
        reference = model(inputs_embeds=embeds)
    torch.testing.assert_close(mixed.logits, reference.logits, rtol=1e-5, atol=1e-5)
    assert mixed.image_hidden_states.shape[:2] == (2, 11)


def test_processor_runs_rule_when_nothing_else_is_set(tiny):
    """Protects resolution step 3: processor at k, no call argument, null generation config -> the LM sees k."""
    model, processor = tiny
    assert model.generation_config.num_visual_tokens is None
    spy = LanguageModelSpy(model)
    inputs = encode(processor, [make_image(3)], k=5)
    greedy(model, inputs)
    spy.close()
    assert spy.lengths[0] == inputs["input_ids"].shape[1]
    assert (inputs["input_ids"] == model.config.image_token_id).sum() == 5


def test_generation_config_beats_runs_and_call_argument_beats_both(tiny):
    """Protects the resolution order (call argument > generation_config > runs), checked on what the language model
    receives and on the output scores, which must equal those of a prompt expanded to that m by the processor."""
    model, processor = tiny
    image = make_image(4)
    at_16 = encode(processor, [image], k=16)
    text_len = at_16["input_ids"].shape[1] - 16
    expected = {m: greedy(model, encode(processor, [image], k=m)) for m in (5, 2)}
    spy = LanguageModelSpy(model)
    try:
        model.generation_config.num_visual_tokens = 5
        by_config = greedy(model, at_16)
        by_call = greedy(model, at_16, num_visual_tokens=2)
    finally:
        model.generation_config.num_visual_tokens = None
        spy.close()
    prefill_lengths = [length for length in spy.lengths if length > 1]
    assert prefill_lengths == [text_len + 5, text_len + 2]
    for result, m in ((by_config, 5), (by_call, 2)):
        new_tokens = result.sequences[:, at_16["input_ids"].shape[1] :]
        torch.testing.assert_close(new_tokens, expected[m].sequences[:, -new_tokens.shape[1] :])
        for ours, theirs in zip(result.scores, expected[m].scores):
            torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
        # the caller's own ids come first
        assert torch.equal(result.sequences[:, : at_16["input_ids"].shape[1]], at_16["input_ids"])


def test_generation_config_budget_survives_save_and_reload(tmp_path, tiny):
    """Protects generation_config.json carrying num_visual_tokens (null by default, a number when fixed)."""
    model, processor = tiny
    model.save_pretrained(tmp_path / "default")
    assert '"num_visual_tokens": null' in (tmp_path / "default" / "generation_config.json").read_text()
    model.generation_config.num_visual_tokens = 3
    try:
        model.save_pretrained(tmp_path / "fixed")
    finally:
        model.generation_config.num_visual_tokens = None
    reloaded = MqtLlavaForConditionalGeneration.from_pretrained(tmp_path / "fixed").eval()
    assert reloaded.generation_config.num_visual_tokens == 3
    spy = LanguageModelSpy(reloaded)
    inputs = encode(processor, [make_image(5)], k=16)
    greedy(reloaded, inputs)
    spy.close()
    assert spy.lengths[0] == inputs["input_ids"].shape[1] - 16 + 3


def test_batched_left_padded_generation_equals_one_by_one(tiny):
    """Protects batching: left-padded prompts of different lengths, rewritten to m = 4, give each row's own output."""
    model, processor = tiny
    images = [make_image(6), make_image(7), make_image(8)]
    questions = ["what is in the image ?", "how many shapes are there ?", "describe the picture in the image ."]
    batch = encode(processor, images, questions, k=16)
    batched = greedy(model, batch, num_visual_tokens=4)
    for i in range(3):
        single = encode(processor, [images[i]], [questions[i]], k=16)
        alone = greedy(model, single, num_visual_tokens=4)
        torch.testing.assert_close(batched.sequences[i, batch["input_ids"].shape[1] :], alone.sequences[0, single["input_ids"].shape[1] :])
        for ours, theirs in zip(batched.scores, alone.scores):
            torch.testing.assert_close(ours[i], theirs[0], rtol=1e-4, atol=1e-4)


def test_vision_and_query_transformer_run_once_per_generate(tiny):
    """Protects prefill-only vision: over a 6-token generation the vision tower and the query transformer each run
    exactly once, and the language model runs once per token."""
    model, processor = tiny
    calls = {"vision": 0, "query": 0}
    hooks = [
        model.model.vision_tower.register_forward_hook(lambda *a: calls.__setitem__("vision", calls["vision"] + 1)),
        model.model.query_transformer.register_forward_hook(lambda *a: calls.__setitem__("query", calls["query"] + 1)),
    ]
    spy = LanguageModelSpy(model)
    try:
        result = greedy(model, encode(processor, [make_image(9)], k=16), num_visual_tokens=7, min_new_tokens=6)
    finally:
        for hook in hooks:
            hook.remove()
        spy.close()
    assert len(result.scores) == 6
    assert calls == {"vision": 1, "query": 1}
    assert len(spy.lengths) == 6


def test_loss_ignores_image_positions(tiny):
    """Protects the model's own loss: labels at image-token positions never count, whatever they hold."""
    model, processor = tiny
    inputs = encode(processor, [make_image(10)], k=6)
    labels = inputs["input_ids"].clone()
    garbage = labels.clone()
    garbage[labels == model.config.image_token_id] = 7
    with torch.no_grad():
        clean = model(**inputs, labels=labels).loss
        noisy = model(**inputs, labels=garbage).loss
    torch.testing.assert_close(clean, noisy)


def test_gradient_checkpointing_gives_same_gradients(tiny):
    """Protects gradient checkpointing: same loss and query-transformer gradients with it on and off."""
    model, processor = tiny
    inputs = encode(processor, [make_image(11)], k=8)
    grads = []
    for checkpointing in (False, True):
        model.train()
        if checkpointing:
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        model.zero_grad()
        loss = model(**inputs, labels=inputs["input_ids"]).loss
        loss.backward()
        grads.append((loss.detach(), model.model.query_transformer.query.grad.clone()))
        if checkpointing:
            model.activation_checkpointing_disable()
    model.eval().zero_grad()
    torch.testing.assert_close(grads[0][0], grads[1][0])
    torch.testing.assert_close(grads[0][1], grads[1][1])
    assert grads[0][1][:8].abs().sum() > 0 and grads[0][1][8:].abs().sum() == 0


@pytest.mark.parametrize("bad", [0, -1, 17, 2.5, "4", True, [4]])
def test_invalid_num_visual_tokens_everywhere(tiny, bad):
    """Protects validation: every invalid form raises ValueError naming 1..M, in the processor and in generate."""
    model, processor = tiny
    inputs = encode(processor, [make_image(12)], k=4)
    with pytest.raises(ValueError, match=r"1\.\.16"):
        encode(processor, [make_image(12)], k=bad)
    with pytest.raises(ValueError, match=r"1\.\.16"):
        model.generate(**inputs, num_visual_tokens=bad, max_new_tokens=2)
    with pytest.raises(ValueError, match=r"1\.\.16"):
        model.get_image_features(inputs["pixel_values"], bad)


def test_image_tokens_without_pixel_values_are_refused(tiny):
    """Protects against answering without the image: a prompt holding image-token runs but no pixel_values raises a
    ValueError naming the runs, in forward and in generate (text-only prompts still run)."""
    model, processor = tiny
    inputs = encode(processor, [make_image(13)], k=4)
    with pytest.raises(ValueError, match=r"1 run\(s\) of image tokens .* no pixel_values"):
        model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
    with pytest.raises(ValueError, match="no pixel_values"):
        model.generate(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], max_new_tokens=2)
    text_only = processor(text=["USER: hello ASSISTANT:"], return_tensors="pt")
    assert model.generate(**text_only, max_new_tokens=2, do_sample=False).shape[1] > text_only["input_ids"].shape[1]


@pytest.mark.parametrize("bad", [0, -3, 17, 2.5, "4", True])
def test_invalid_generation_config_budget_is_refused_at_save(tmp_path, tiny, bad):
    """Protects saved folders from a budget that would fail only at the next generate: save_pretrained refuses a
    generation_config.num_visual_tokens outside 1..M, names the field and the range, and writes nothing."""
    model, _ = tiny
    model.generation_config.num_visual_tokens = bad
    try:
        with pytest.raises(ValueError, match=r"generation_config\.num_visual_tokens must be an integer in 1\.\.16"):
            model.save_pretrained(tmp_path / "model")
    finally:
        model.generation_config.num_visual_tokens = None
    assert not (tmp_path / "model").exists()
