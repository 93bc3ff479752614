"""`num_visual_tokens="auto"`: the model answers at the smallest budget it is confident in, encodes each image once,
reuses the prompt's text before the image, and gives exactly the fixed-budget answer at the budget it chose."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from transformers import GenerationConfig, TextStreamer, pipeline

from mqt_llava import MqtLlavaForConditionalGeneration, MqtLlavaProcessor
from mqt_llava.evaluation import ASSETS_DIR
from mqt_llava.evaluation.auto_budget.answering import answer_auto, answer_fixed, prompt_inputs
from mqt_llava.evaluation.auto_budget.calibration import simulate
from mqt_llava.evaluation.auto_budget.questions import shapes_vqa_items
from mqt_llava.modeling_mqt_llava.adaptive_budget import (
    DEFAULT_CONFIDENCE_RULE,
    DEFAULT_SCHEDULE,
    parse_schedule,
)
from mqt_llava.tools.testing import build_tiny_model, make_image

SHIPPED = ASSETS_DIR / "mqt-llava-tiny"
SETTINGS = {"max_new_tokens": 3, "do_sample": False}
# A stricter threshold than the shipped model's calibrated one, so that these small batches escalate
STRICT = 0.9


@pytest.fixture(scope="module")
def demo():
    model = MqtLlavaForConditionalGeneration.from_pretrained(SHIPPED).eval()
    return model, MqtLlavaProcessor.from_pretrained(SHIPPED)


@pytest.fixture(scope="module")
def mixed_items():
    """Questions of every family from a split no other test reads."""
    return shapes_vqa_items("test", 6, 11)


def test_global_questions_stop_at_the_smallest_budget(demo):
    """Protects the point of "auto": with the shipped model's saved settings, a global question (the background
    colour) is answered right at the schedule's smallest budget, without escalating."""
    model, processor = demo
    items = [item for item in shapes_vqa_items("test", 16, 12) if item.family == "background"]
    answers = answer_auto(model, processor, items, {})
    smallest = parse_schedule(DEFAULT_SCHEDULE, model.config.num_queries)[0]
    assert [answer.num_visual_tokens for answer in answers] == [smallest] * len(items)
    assert all(item.is_correct(answer.text) for item, answer in zip(items, answers))


def test_escalates_where_the_smallest_budget_is_unsure_and_wrong(demo):
    """Protects the escalation: every question whose smallest-budget answer is below the threshold goes on to a
    larger budget, every other one stops there, and counting questions the smallest budget gets wrong are escalated
    and then answered right."""
    model, processor = demo
    items = [item for item in shapes_vqa_items("test", 80, 13) if item.family == "count"]
    smallest = parse_schedule(DEFAULT_SCHEDULE, model.config.num_queries)[0]
    small = answer_fixed(model, processor, items, smallest, DEFAULT_CONFIDENCE_RULE)
    auto = answer_auto(model, processor, items, {"auto_confidence_threshold": STRICT})
    for first, chosen in zip(small, auto):
        assert (chosen.num_visual_tokens > smallest) == (first.confidence < STRICT)
    rescued = [
        item
        for item, first, chosen in zip(items, small, auto)
        if not item.is_correct(first.text) and chosen.num_visual_tokens > smallest and item.is_correct(chosen.text)
    ]
    assert rescued, "no counting question wrong at the smallest budget was escalated and answered right"


def test_every_visual_token_and_the_text_before_the_image_are_computed_once(demo, mixed_items):
    """Protects the cost of "auto": the vision tower runs once per batch however many budgets are tried, the query
    transformer computes each image's tokens once (an escalation adds only the queries of its larger budget, for the
    images still open), and the language model computes the text before the image once (later attempts start from
    its KV cache)."""
    model, processor = demo
    calls = {"vision": 0, "uncached": 0}
    query_calls = []  # (images, first query, last query + 1) of every query-transformer call

    def count_vision(module, args, kwargs):
        calls["vision"] += 1

    def language_model_call(module, args, kwargs):
        cache = kwargs.get("cache", kwargs.get("past_key_values"))
        calls["uncached"] += cache is None or cache.get_seq_length() == 0

    def query_call(module, args, kwargs):
        query_calls.append((args[0].shape[0], kwargs.get("first_query", 0), args[1]))

    hooks = [
        model.model.vision_tower.register_forward_pre_hook(count_vision, with_kwargs=True),
        model.model.language_model.register_forward_pre_hook(language_model_call, with_kwargs=True),
        model.model.query_transformer.register_forward_pre_hook(query_call, with_kwargs=True),
    ]
    try:
        inputs = prompt_inputs(processor, mixed_items, "cpu")
        output = model.generate(
            **inputs, num_visual_tokens="auto", auto_confidence_threshold=STRICT, return_dict_in_generate=True, **SETTINGS
        )
    finally:
        for hook in hooks:
            hook.remove()
    attempts = output.attempts.tolist()
    assert max(attempts) >= 2, "the batch should need several budgets for this test to mean anything"
    assert calls == {"vision": 1, "uncached": 1}
    schedule = parse_schedule(DEFAULT_SCHEDULE, model.config.num_queries)
    expected = [(sum(a > step for a in attempts), ([0, *schedule])[step], schedule[step]) for step in range(max(attempts))]
    assert query_calls == expected  # step s: only the prompts still open, only the queries its budget adds
    assert sum(n * (last - first) for n, first, last in query_calls) == int(output.num_visual_tokens.sum())


def test_auto_answers_equal_fixed_generation_at_the_chosen_budget(demo, mixed_items):
    """Protects exactness: each prompt's "auto" output is token for token the fixed-budget output at the m it chose,
    and the calibration's simulation (fixed-budget answers and confidences) predicts the same choices."""
    model, processor = demo
    inputs = prompt_inputs(processor, mixed_items, "cpu")
    auto = model.generate(
        **inputs, num_visual_tokens="auto", auto_confidence_threshold=STRICT, return_dict_in_generate=True, **SETTINGS
    )
    assert len(set(auto.num_visual_tokens.tolist())) >= 2
    for m in set(auto.num_visual_tokens.tolist()):
        fixed = model.generate(**inputs, num_visual_tokens=m, **SETTINGS)
        rows = (auto.num_visual_tokens == m).nonzero()[:, 0]
        width = min(fixed.shape[1], auto.sequences.shape[1])
        assert torch.equal(auto.sequences[rows, :width], fixed[rows, :width])
    schedule = parse_schedule(DEFAULT_SCHEDULE, model.config.num_queries)
    per_budget = [answer_fixed(model, processor, mixed_items, m, DEFAULT_CONFIDENCE_RULE, max_new_tokens=3) for m in schedule]
    simulated = simulate(per_budget, STRICT)
    assert [answer.num_visual_tokens for answer in simulated] == auto.num_visual_tokens.tolist()


def test_settings_are_saved_in_the_generation_config_and_used(tmp_path):
    """Protects savable settings: "auto" with a schedule, rule and threshold saved in generation_config.json
    survive a reload and drive `generate` with no argument; a call's argument overrides the saved threshold."""
    model, processor = build_tiny_model(seed=3)
    model.generation_config.num_visual_tokens = "auto"
    model.generation_config.auto_budget_schedule = "2,M/2,M"
    model.generation_config.auto_confidence_rule = "answer_prob"
    model.generation_config.auto_confidence_threshold = 1.0
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "generation_config.json").read_text())
    assert saved["num_visual_tokens"] == "auto" and saved["auto_budget_schedule"] == "2,M/2,M"
    reloaded = MqtLlavaForConditionalGeneration.from_pretrained(tmp_path).eval()
    inputs = processor(images=[make_image(1), make_image(2)], text=["<image> what ?", "<image> where ?"], padding=True,
                       return_tensors="pt")  # fmt: skip
    strict = reloaded.generate(**inputs, return_dict_in_generate=True, **SETTINGS)
    assert strict.num_visual_tokens.tolist() == [reloaded.config.num_queries] * 2  # a random model is never certain
    loose = reloaded.generate(**inputs, auto_confidence_threshold=1e-9, return_dict_in_generate=True, **SETTINGS)
    assert loose.num_visual_tokens.tolist() == [2, 2]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"auto_budget_schedule": "2,eight"}, "'eight' is not a budget"),
        ({"auto_budget_schedule": "8,2"}, "increasing order"),
        ({"auto_budget_schedule": "M"}, "at least two"),
        ({"auto_budget_schedule": "2,99"}, "outside 1..16"),
        ({"auto_confidence_threshold": 0.0}, "in (0, 1]"),
        ({"auto_confidence_threshold": 1.5}, "in (0, 1]"),
        ({"auto_confidence_rule": "vibes"}, "auto_confidence_rule must be one of"),
        ({"streamer": "streamer"}, "does not support streamer"),
    ],
)
def test_bad_auto_settings_are_refused(arguments, message):
    """Protects error handling: unknown or out-of-range schedules, thresholds and rules, and options "auto" cannot
    honour, are refused with a message naming them."""
    model, processor = build_tiny_model(seed=4)
    if arguments.get("streamer") == "streamer":
        arguments = {"streamer": TextStreamer(processor.tokenizer)}
    inputs = processor(images=[make_image(1)], text=["<image> what ?"], return_tensors="pt")
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        model.generate(**inputs, num_visual_tokens="auto", **arguments, **SETTINGS)


def test_auto_needs_a_model_with_several_queries_and_auto_settings_need_auto(tmp_path):
    """Protects the remaining refusals: "auto" on a model with M = 1, `auto_*` arguments with an integer budget, and
    saving a generation config whose "auto" settings do not parse."""
    model, processor = build_tiny_model(seed=5, num_queries=1)
    inputs = processor(images=[make_image(1)], text=["<image> what ?"], return_tensors="pt")
    with pytest.raises(ValueError, match="M = 1"):
        model.generate(**inputs, num_visual_tokens="auto", **SETTINGS)
    model, processor = build_tiny_model(seed=5)
    inputs = processor(images=[make_image(1)], text=["<image> what ?"], return_tensors="pt")
    with pytest.raises(ValueError, match='only apply with num_visual_tokens="auto"'):
        model.generate(**inputs, num_visual_tokens=4, auto_confidence_threshold=0.5, **SETTINGS)
    model.generation_config.num_visual_tokens = "auto"
    model.generation_config.auto_confidence_threshold = 2
    with pytest.raises(ValueError, match="auto_confidence_threshold"):
        model.save_pretrained(tmp_path)


def test_pipeline_and_command_line_answer_with_auto(tmp_path, mixed_items):
    """Protects the user paths: `pipeline("image-text-to-text")` from the shipped folder's remote code with
    `generate_kwargs={"num_visual_tokens": "auto"}`, and `mqt-llava generate --num-visual-tokens auto`, which also
    prints the budget that answered."""
    item = mixed_items[0]
    pipe = pipeline("image-text-to-text", model=str(SHIPPED), trust_remote_code=True, device="cpu")
    messages = [{"role": "user", "content": [{"type": "image", "image": item.image}, {"type": "text", "text": item.question}]}]
    output = pipe(text=messages, return_full_text=False, generate_kwargs={"num_visual_tokens": "auto", **SETTINGS})
    assert item.is_correct(output[0]["generated_text"])
    image_path = tmp_path / "scene.png"
    item.image.save(image_path)
    completed = subprocess.run(
        [sys.executable, "-m", "mqt_llava", "generate", "--model", str(SHIPPED), "--image", str(image_path),
         "--prompt", item.question, "--num-visual-tokens", "auto", "--max-new-tokens", "3"],
        capture_output=True, text=True, timeout=300, env=os.environ.copy(),
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    answer, budget_line = completed.stdout.strip().splitlines()[-2:]
    assert item.is_correct(answer) and "answered with" in budget_line


def test_calibration_stores_a_threshold_that_meets_its_target(tmp_path):
    """Protects `mqt-llava calibrate`: on a validation split it picks a threshold whose simulated accuracy is within
    the allowed drop of the full budget's, writes it into the folder's generation config, and the reloaded model uses
    it."""
    folder = tmp_path / "model"
    shutil.copytree(SHIPPED, folder)
    completed = subprocess.run(
        [sys.executable, "-m", "mqt_llava", "calibrate", "--model", str(folder), "--scenes", "10",
         "--max-accuracy-drop", "2", "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=600, env=os.environ.copy(),
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads((tmp_path / "out" / "calibration.json").read_text())
    chosen, full = result["chosen"], result["full_budget"]
    assert chosen["accuracy"] >= full["accuracy"] - 0.02 - 1e-9
    assert chosen["language_model_flops"] <= full["language_model_flops"]
    stored = GenerationConfig.from_pretrained(folder)
    assert stored.auto_confidence_threshold == pytest.approx(chosen["threshold"])
    assert stored.auto_budget_schedule == DEFAULT_SCHEDULE


def test_query_transformer_computes_a_range_of_queries_alone():
    """Protects incremental escalation: the tokens of queries f..m-1 computed alone equal those rows of the full
    output (queries never attend to each other), and a range outside 0..m-1 is refused."""
    model, _ = build_tiny_model(seed=6)
    features = torch.randn(2, 16, model.config.vision_config.hidden_size)
    with torch.no_grad():
        full, _ = model.model.query_transformer(features, 12)
        tail, _ = model.model.query_transformer(features, 12, first_query=5)
    torch.testing.assert_close(tail, full[:, 5:])
    with pytest.raises(ValueError, match="first_query must be in 0..11"):
        model.model.query_transformer(features, 12, first_query=12)
