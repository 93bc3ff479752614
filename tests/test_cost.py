"""Cost measurement: FLOP counts against an analytic count, decode-step cost independent of the image, the paper's
Figure-1 reproduction, and the `mqt-llava flops` / `mqt-llava bench` commands as real subprocesses."""

from __future__ import annotations

import argparse
import json
import os
import subprocess

import pytest
import torch
from torch import nn

from mqt_llava.evaluation import flops as flops_command
from mqt_llava.evaluation.cost.bench_setup import build_bench_model, prompt_with_text_tokens, text_only_ids
from mqt_llava.evaluation.cost.flop_counting import count_flops, count_parts
from mqt_llava.evaluation.cost.kv_cache import next_step_inputs
from mqt_llava.evaluation.cost.options import budgets_for, int_list
from mqt_llava.evaluation.cost.peer import build_llava_peer, peer_image_size
from mqt_llava.evaluation.flops import flops_report
from mqt_llava.tools.presets import preset_config
from mqt_llava.tools.testing import make_image

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run_cli(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["mqt-llava", *args], check=False, capture_output=True, text=True, cwd=cwd, env=os.environ.copy(), timeout=300
    )


def linear_weights(module: nn.Module) -> int:
    """Weights of every nn.Linear inside `module`: the "params" of the 2 * params * tokens rule."""
    return sum(layer.weight.numel() for layer in module.modules() if isinstance(layer, nn.Linear))


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return build_bench_model("tiny")


def test_flop_counts_match_the_analytic_count(tiny):
    """Protects the FLOP counter (`mqt-llava flops`): every part of a tiny model matches 2 * params * tokens plus the
    attention terms (causal pairs in the language model, full squares elsewhere) within 2%."""
    model, _ = tiny
    config = model.config
    vision, text = config.vision_config, config.text_config
    prompt_tokens, m = 20, 9
    grid = (vision.image_size // vision.patch_size) ** 2
    counted = count_parts(
        model,
        image_size=vision.image_size,
        prompt_tokens=prompt_tokens,
        num_visual_tokens=m,
        image_kwargs={"num_visual_tokens": m},
    )

    tokens = grid + 1  # CLS
    d = vision.hidden_size
    expected_vision = (
        2 * linear_weights(model.model.vision_tower) * tokens
        + 2 * grid * 3 * vision.patch_size**2 * d  # patch embedding convolution
        + vision.num_hidden_layers * 4 * tokens * tokens * d  # q k^T and attention x v, full
    )
    expected_query_transformer = (
        2 * d * d * (m + grid + grid + m)  # q_proj on m queries, k_proj and v_proj on the grid, o_proj on m
        + 4 * m * grid * d  # cross-attention
        + 2 * d * text.hidden_size * m  # projection to the language model
    )
    n = prompt_tokens + m
    lm_linear = linear_weights(model.model.language_model)
    q_width = text.num_attention_heads * (text.hidden_size // text.num_attention_heads)
    head = 2 * text.hidden_size * text.vocab_size  # LM head on the last position only
    expected_prefill = 2 * lm_linear * n + text.num_hidden_layers * 2 * q_width * n * (n + 1) + head
    expected_decode = 2 * lm_linear + text.num_hidden_layers * 4 * q_width * (n + 1) + head

    for name, got, expected in (
        ("vision tower", counted.vision_tower, expected_vision),
        ("query transformer", counted.projector, expected_query_transformer),
        ("prefill", counted.prefill, expected_prefill),
        ("decode step", counted.decode_step, expected_decode),
    ):
        assert got == pytest.approx(expected, rel=0.02), name

    peer = build_llava_peer(model)
    peer_counted = count_parts(peer, image_size=vision.image_size, prompt_tokens=prompt_tokens, num_visual_tokens=grid)
    expected_mlp = 2 * grid * (d * text.hidden_size + text.hidden_size * text.hidden_size)
    assert peer_counted.projector == pytest.approx(expected_mlp, rel=0.02)
    assert peer_counted.vision_tower == counted.vision_tower  # the shared tower


def test_decode_steps_cost_the_same_with_or_without_an_image(tiny):
    """Protects "the vision tower and query transformer never run after prefill": over whole `generate` calls, an
    image prompt costs exactly one image encoding more than a text-only prompt of the same length, whatever the
    number of new tokens, and its decode step costs exactly what the text-only one does."""
    model, processor = tiny
    prompt = prompt_with_text_tokens(processor, 40)
    inputs = dict(processor(images=[make_image(1, 32)], text=[prompt], num_visual_tokens=4, return_tensors="pt"))
    text_ids = text_only_ids(
        inputs["input_ids"], model.config.image_token_id, processor.tokenizer.convert_tokens_to_ids("the")
    )
    text_inputs = {"input_ids": text_ids, "attention_mask": inputs["attention_mask"]}
    _, image_flops = count_flops(lambda: model.model.get_image_features(inputs["pixel_values"], 4))

    def generate_flops(call_inputs, new_tokens):
        _, counts = count_flops(
            lambda: model.generate(**call_inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False)
        )
        return counts["Global"]

    for new_tokens in (2, 6):
        extra = generate_flops(inputs, new_tokens) - generate_flops(text_inputs, new_tokens)
        assert extra == image_flops["Global"], new_tokens

    def decode_step_flops(call_inputs):
        with torch.no_grad():
            cache = next_step_inputs(model(**call_inputs, use_cache=True))
        _, counts = count_flops(lambda: model(input_ids=text_ids[:, -1:], **cache, use_cache=True))
        return counts

    with_image, without = decode_step_flops(inputs), decode_step_flops(text_inputs)
    assert with_image["Global"] == without["Global"]
    assert not any("vision_tower" in name or "query_transformer" in name for name in with_image)


def test_paper_figure_1_reproduced_within_5_percent():
    """Protects the headline cost claim: under the stated 54-token prompt, each of the paper's Figure-1 TFLOPs (and
    LLaVA-1.5's 8.75 at 576 tokens) is reproduced within 5% by the 7B shape counted on fake tensors."""
    report = flops_report(preset_config("mqt-llava-7b"), 54, [8, 16, 36, 64, 144, 256], source="preset:mqt-llava-7b")
    rows = [row for row in report["mqt_llava"] if row["paper_tflops"] is not None]
    assert [row["num_visual_tokens"] for row in rows] == [8, 16, 36, 64, 144, 256]
    for row in rows + [report["llava"]]:
        assert abs(row["relative_error_vs_paper"]) < 0.05, row
    assert report["llava"]["num_visual_tokens"] == 576
    sixteen = next(row for row in rows if row["num_visual_tokens"] == 16)
    assert sixteen["llava_over_this"]["language_model"] > sixteen["llava_over_this"]["whole_model"] > 6


def test_flops_command_on_a_model_folder(tmp_path, tiny_model_dir):
    """Protects `mqt-llava flops --model DIR`: table on stdout, flops.json with a row per budget, flops.png."""
    completed = run_cli(
        "flops", "--model", str(tiny_model_dir), "--num-visual-tokens", "1,4,16", "--out", str(tmp_path), cwd=tmp_path
    )
    assert completed.returncode == 0, completed.stderr
    assert "| LLaVA 16 |" in completed.stdout and "prefill = decoder" in completed.stdout
    report = json.loads((tmp_path / "flops.json").read_text())
    assert [row["num_visual_tokens"] for row in report["mqt_llava"]] == [1, 4, 16]
    totals = [row["flops"]["total"] for row in report["mqt_llava"]]
    assert totals == sorted(totals) and len(set(totals)) == 3
    assert report["llava"]["paper_tflops"] is None  # not the paper's shape: no reference column
    assert (tmp_path / "flops.png").read_bytes()[:8] == PNG_MAGIC


def test_flops_command_refuses_a_budget_above_m(tmp_path, tiny_model_dir, caplog):
    """Protects `mqt-llava flops` input checking: a budget outside 1..M is refused with the valid range, nothing
    written."""
    parser = argparse.ArgumentParser()
    flops_command.add_arguments(parser)
    args = parser.parse_args(
        ["--model", str(tiny_model_dir), "--num-visual-tokens", "4,17", "--out", str(tmp_path / "out")]
    )
    assert flops_command.run(args) == 2
    assert "1..16" in caplog.text and "17" in caplog.text
    assert not (tmp_path / "out").exists()


def test_bench_command_writes_its_report(tmp_path):
    """Protects `mqt-llava bench` on the CI size: every case measured (budgets, full-grid and equal-token LLaVA
    peers, text only), a valid bench.json with ordered statistics, KV-cache bytes exactly (text + m) tokens, a plot."""
    completed = run_cli(
        "bench",
        "--config",
        "tiny",
        "--num-visual-tokens",
        "4,16",
        "--warmup",
        "0",
        "--repeats",
        "1",
        "--new-tokens",
        "3",
        "--decode-steps",
        "2",
        "--out",
        str(tmp_path),
        cwd=tmp_path,
    )
    assert completed.returncode == 0, completed.stderr
    assert "1 thread(s)" in completed.stdout and f"torch {torch.__version__}" in completed.stdout
    report = json.loads((tmp_path / "bench.json").read_text())
    assert report["threads"] == 1 and report["config"] == "tiny"
    cases = {case["name"]: case for case in report["cases"]}
    assert set(cases) == {"mqt-m4", "mqt-m16", "llava-16", "llava-eq-4", "text-only"}
    for case in report["cases"]:
        for clock in ("wall_clock", "cpu_time"):
            for key in ("prefill_s", "decode_step_s", "generate_s"):
                stats = case[clock][key]
                assert 0 < stats["min"] <= stats["median"] <= stats["max"], (case["name"], clock, key)
            assert case[clock]["decode_step_s"]["runs"] == 2
        assert case["kv_cache_bytes"] == case["kv_cache_bytes_expected"]
        assert case["generate_peak_memory_bytes"] is None or case["generate_peak_memory_bytes"] >= 0
    per_token = (cases["mqt-m16"]["kv_cache_bytes"] - cases["mqt-m4"]["kv_cache_bytes"]) // 12
    assert cases["mqt-m4"]["kv_cache_bytes"] == per_token * cases["mqt-m4"]["sequence_tokens"]
    assert cases["mqt-m16"]["sequence_tokens"] == cases["text-only"]["sequence_tokens"] == report["prompt_tokens"] + 16
    summary = report["summary"]
    for clock in ("wall_clock", "cpu_time"):
        assert [row["num_visual_tokens"] for row in summary[clock]["equal_visual_tokens"]] == [4, 16]
        assert summary[clock]["prefill_speedup"][0]["flop_ratio_language_model"] > 1
    assert summary["kv_cache_matches_text_plus_m"] is True
    assert (tmp_path / "bench.png").read_bytes()[:8] == PNG_MAGIC


def test_bad_budgets_are_refused_with_their_culprit(tiny):
    """Protects the input checks of both commands: out-of-range budgets, non-integers and non-square peer grids."""
    with pytest.raises(ValueError, match=r"1\.\.16.*got 0"):
        budgets_for(16, [4, 0])
    with pytest.raises(argparse.ArgumentTypeError, match="'x'"):
        int_list("4,x")
    assert budgets_for(16, None) == [2, 4, 8, 16]
    with pytest.raises(ValueError, match="8 tokens"):
        peer_image_size(tiny[0].config, 8)
