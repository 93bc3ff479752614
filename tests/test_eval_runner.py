"""`mqt-llava eval` on a tiny random model: resumable answering, scoring, score-only, judges and input checks."""

from __future__ import annotations

import argparse
import base64
import io
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mqt_llava.evaluation import runner
from mqt_llava.evaluation.benchmarks import get_benchmark
from mqt_llava.tools.testing import make_image

NUM_QUESTIONS = 8


def _eval_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    runner.add_arguments(parser)
    return parser.parse_args(list(argv))


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


@pytest.fixture(scope="module")
def pope_files(tmp_path_factory) -> Path:
    """A POPE benchmark in LLaVA's layout: question JSONL, images, and per-split label files aligned by order."""
    root = tmp_path_factory.mktemp("pope")
    (root / "images").mkdir()
    (root / "labels").mkdir()
    questions, labels = [], {"random": [], "adversarial": []}
    for index in range(NUM_QUESTIONS):
        split = "random" if index % 2 == 0 else "adversarial"
        make_image(index).save(root / "images" / f"{index}.png")
        text = f"Is there a {'red' if index % 3 else 'blue'} circle in the image ?"
        questions.append({"question_id": index, "image": f"{index}.png", "category": split,
                          "text": f"{text}\nAnswer the question using a single word or phrase."})  # fmt: skip
        labels[split].append({"question_id": index, "text": text, "label": "yes" if index % 3 else "no"})
    _write_jsonl(root / "questions.jsonl", questions)
    for split, rows in labels.items():
        _write_jsonl(root / "labels" / f"coco_pope_{split}.json", rows)
    return root


def _pope_argv(files: Path, model_dir: Path, out: Path) -> list[str]:
    return ["--model", str(model_dir), "--benchmark", "pope", "--questions", str(files / "questions.jsonl"),
            "--images", str(files / "images"), "--annotations", str(files / "labels"), "--answers", str(out),
            "--num-visual-tokens", "2,4", "--batch-size", "1", "--max-new-tokens", "3"]  # fmt: skip


def _line_count(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_killed_run_resumes_and_scores_like_an_uninterrupted_one(pope_files, tiny_model_dir, tmp_path) -> None:
    """Resumable evaluation: a run killed by SIGKILL mid-way resumes, answers each question exactly once, and its
    scores (and --score-only re-scoring) equal those of an uninterrupted run."""
    resumed = tmp_path / "resumed"
    command = [sys.executable, "-m", "mqt_llava", "eval", *_pope_argv(pope_files, tiny_model_dir, resumed)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    first = resumed / "pope_m2.jsonl"
    deadline = time.monotonic() + 120
    while _line_count(first) < 3 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == -signal.SIGKILL, f"the run ended before it was killed:\n{stderr.decode()[-3000:]}"
    killed_at = _line_count(first)
    assert 3 <= killed_at < NUM_QUESTIONS or _line_count(resumed / "pope_m4.jsonl") < NUM_QUESTIONS
    with open(first, "a") as handle:  # a write cut short by the kill
        handle.write('{"question_id": "7", "prom')

    completed = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    for m in (2, 4):
        ids = [json.loads(line)["question_id"] for line in (resumed / f"pope_m{m}.jsonl").read_text().splitlines()]
        assert sorted(ids) == sorted(str(index) for index in range(NUM_QUESTIONS)), f"m={m}: {ids}"

    straight = tmp_path / "straight"
    assert runner.run(_eval_args(*_pope_argv(pope_files, tiny_model_dir, straight))) == 0
    resumed_results = json.loads((resumed / "pope_results.json").read_text())["results"]
    straight_results = json.loads((straight / "pope_results.json").read_text())["results"]
    assert set(resumed_results) == {"2", "4"}
    assert resumed_results == straight_results
    for m in (2, 4):
        answers = {row["question_id"]: row["text"] for row in map(json.loads, (straight / f"pope_m{m}.jsonl").open())}
        resumed_answers = {
            row["question_id"]: row["text"] for row in map(json.loads, (resumed / f"pope_m{m}.jsonl").open())
        }
        assert answers == resumed_answers

    (resumed / "pope_results.json").unlink()
    score_only = _pope_argv(pope_files, tiny_model_dir, resumed)[2:]  # no --model
    assert runner.run(_eval_args(*score_only, "--score-only")) == 0
    assert json.loads((resumed / "pope_results.json").read_text())["results"] == straight_results
    assert (resumed / "pope_results.png").stat().st_size > 0
    assert "| 2 |" in (resumed / "pope_results.md").read_text()


def test_shapes_vqa_runs_through_the_runner(tiny_model_dir, tmp_path) -> None:
    """Shapes-VQA (the demo's benchmark) is scored by the same runner: exact match per question family."""
    from mqt_llava.evaluation.shapes_vqa.export import export_split

    # the third scene of this split is the first with a unique shape, so color and position questions are asked
    files = export_split(tmp_path / "shapes", "test", num_scenes=3, seed=0)
    out = tmp_path / "out"
    argv = ["--model", str(tiny_model_dir), "--benchmark", "shapes_vqa", "--questions", str(files.questions),
            "--answers", str(out), "--num-visual-tokens", "16", "--batch-size", "5",
            "--max-new-tokens", "2"]  # fmt: skip
    assert runner.run(_eval_args(*argv)) == 0
    metrics = json.loads((out / "shapes_vqa_results.json").read_text())["results"]["16"]
    families = {"background", "color", "exists", "count", "position"}
    assert {f"accuracy/{family}" for family in families} <= set(metrics)
    answers = [json.loads(line) for line in (out / "shapes_vqa_m16.jsonl").read_text().splitlines()]
    rows = [json.loads(line) for line in files.questions.read_text().splitlines()]
    gold = {row["question_id"]: row["answer"] for row in rows}
    expected = 100.0 * sum(a["text"].strip().lower().rstrip(".") == gold[a["question_id"]] for a in answers) / len(rows)
    assert metrics["accuracy"] == pytest.approx(expected)
    assert metrics["num_answered"] == len(rows)


def _llava_bench_files(root: Path) -> Path:
    root.mkdir()
    make_image(0).save(root / "001.jpg")
    _write_jsonl(root / "questions.jsonl", [{"question_id": 0, "image": "001.jpg", "text": "What is odd here?",
                                              "category": "complex"}])  # fmt: skip
    _write_jsonl(root / "context.jsonl", [{"id": "001", "image": "001.jpg", "caption": "A square on noise."}])
    _write_jsonl(root / "answers_gpt4.jsonl", [{"question_id": 0, "text": "The square is odd."}])
    return root


# Made-up grading texts: the official ones are the user's to supply, and the tests only check where each text goes.
FAKE_PROMPTS = {
    "llava_bench_system": "SYSTEM: grade carefully.",
    "llava_bench_rule": "RULE: two numbers, then why.",
    "mmvet_prompt": "TABLE:\nQ | Truth | Answer | Score\nhow many? | 2 | two | 1.0",
    "mmvet_retry_suffix": "\nRETRY: a number only: ",
}


def _prompts_file(path: Path, **texts: object) -> Path:
    path.write_text(json.dumps(texts or FAKE_PROMPTS))
    return path


def test_judged_benchmark_without_prompts_or_judge_says_so_and_scores_nothing(tmp_path, caplog) -> None:
    """Judge-graded benchmarks: without --judge-prompts the command names the file it needs and where the official
    texts come from; without --judge-model it says no judge is configured. Either way it scores nothing, keeps the
    answers and exits cleanly."""
    files = _llava_bench_files(tmp_path / "bench")
    out = tmp_path / "out"
    out.mkdir()
    _write_jsonl(out / "llava_bench_m4.jsonl", [{"question_id": "0", "text": "A square."}])
    argv = ["--benchmark", "llava_bench", "--questions", str(files / "questions.jsonl"), "--answers", str(out),
            "--score-only"]  # fmt: skip
    with caplog.at_level(logging.WARNING):
        assert runner.run(_eval_args(*argv, "--judge-model", "gpt-4-0314")) == 0
    assert "--judge-prompts FILE" in caplog.text
    assert "llava_bench_system and llava_bench_rule" in caplog.text
    assert "llava/eval/table/rule.json" in caplog.text and "llava/eval/eval_gpt_review_bench.py" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert runner.run(_eval_args(*argv, "--judge-prompts", str(_prompts_file(tmp_path / "p.json")))) == 0
    assert "no judge is configured" in caplog.text
    assert not (out / "llava_bench_results.json").exists()
    assert (out / "llava_bench_m4.jsonl").read_text() == '{"question_id": "0", "text": "A square."}\n'


def test_judge_prompts_file_errors_and_request_layout(tmp_path) -> None:
    """--judge-prompts: a missing file or key is named in the error; only the benchmark's own keys are needed;
    LLaVA's rule.json gives per-category rules; the requests keep the official layout around the user's texts."""
    from mqt_llava.evaluation.judge import (
        llava_bench_messages,
        load_judge_prompts,
        mmvet_messages,
    )

    with pytest.raises(FileNotFoundError, match="nowhere.json"):
        load_judge_prompts(tmp_path / "nowhere.json", "mmvet")
    partial = _prompts_file(tmp_path / "mmvet_only.json", mmvet_prompt="P", mmvet_retry_suffix="S")
    with pytest.raises(ValueError, match="no key 'llava_bench_system'") as error:
        load_judge_prompts(partial, "llava_bench")
    assert str(partial) in str(error.value) and "llava/eval/eval_gpt_review_bench.py" in str(error.value)
    without_suffix = _prompts_file(tmp_path / "no_suffix.json", mmvet_prompt="P")
    with pytest.raises(ValueError, match=rf"{tmp_path}.*no key 'mmvet_retry_suffix'.*mm-vet_evaluator.py"):
        load_judge_prompts(without_suffix, "mmvet")
    (tmp_path / "list.json").write_text("[]")
    with pytest.raises(TypeError, match="list.json must hold a JSON object"):
        load_judge_prompts(tmp_path / "list.json", "mmvet")

    mmvet = load_judge_prompts(partial, "mmvet")
    first = mmvet_messages(mmvet, "Which?", "a<AND>b", "a and b")
    assert first == [{"role": "user", "content": "P\nWhich? | a <AND> b | a and b | "}]
    assert mmvet_messages(mmvet, "Which?", "a", "b", retry=True)[0]["content"] == "P\nWhich? | a | b | S"

    prompts = load_judge_prompts(_prompts_file(tmp_path / "all.json"), "llava_bench")
    system, user = llava_bench_messages(prompts, "ctx", "q?", "ref", "ans", "detail")
    assert system == {"role": "system", "content": FAKE_PROMPTS["llava_bench_system"]}
    assert user["content"] == ("[Context]\nctx\n\n[Question]\nq?\n\n[Assistant 1]\nref\n\n[End of Assistant 1]\n\n"
                               "[Assistant 2]\nans\n\n[End of Assistant 2]\n\n"
                               f"[System]\n{FAKE_PROMPTS['llava_bench_rule']}\n\n")  # fmt: skip

    categories = ("conv", "detail", "complex")
    rule_json = {f"llava_bench_{c}": {"role": "Assistant", "prompt": f"rule for {c}"} for c in categories}
    rule_json.update(coding={"role": "Assistant", "prompt": "unused"}, llava_bench_system="S")
    from_rule_json = load_judge_prompts(_prompts_file(tmp_path / "rule.json", **rule_json), "llava_bench")
    assert llava_bench_messages(from_rule_json, "c", "q", "r", "a", "conv")[1]["content"].endswith(
        "[System]\nrule for conv\n\n"
    )
    with pytest.raises(ValueError, match="rule.json has no rule for the LLaVA-Bench category 'all'"):
        llava_bench_messages(from_rule_json, "c", "q", "r", "a", "all")
    del rule_json["llava_bench_detail"]
    with pytest.raises(ValueError, match="no key 'llava_bench_rule'"):
        load_judge_prompts(_prompts_file(tmp_path / "rule.json", **rule_json), "llava_bench")


@pytest.fixture(scope="module")
def tiny_judge_dir(tmp_path_factory) -> Path:
    """A tiny random Llama chat model with a word-level tokenizer and a chat template: a real, if useless, judge."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from mqt_llava.processing.tokenizer import build_word_tokenizer

    tokenizer = build_word_tokenizer(["0.0 0.5 1.0 score the answer is correct wrong 8 6 question"])
    tokenizer.chat_template = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}assistant:"
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)  # fmt: skip
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("judge")
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_mmvet_graded_by_a_local_judge_with_cached_replies(tmp_path, tiny_judge_dir) -> None:
    """MM-Vet with a local transformers judge: replies are cached and reused, unreadable grades count 0.0."""
    make_image(1).save(tmp_path / "v1_0.png")
    (tmp_path / "mm-vet.json").write_text(json.dumps({
        "v1_0": {"imagename": "v1_0.png", "capability": ["rec"], "question": "What is it?", "answer": "a square"},
        "v1_1": {"imagename": "v1_0.png", "capability": ["ocr", "rec"], "question": "Text?", "answer": "none"},
    }))  # fmt: skip
    out = tmp_path / "out"
    out.mkdir()
    _write_jsonl(
        out / "mmvet_m2.jsonl", [{"question_id": "v1_0", "text": "a square"}, {"question_id": "v1_1", "text": "x"}]
    )
    argv = ["--benchmark", "mmvet", "--questions", str(tmp_path / "mm-vet.json"), "--answers", str(out),
            "--score-only", "--judge-model", str(tiny_judge_dir),
            "--judge-prompts", str(_prompts_file(tmp_path / "prompts.json"))]  # fmt: skip
    assert runner.run(_eval_args(*argv)) == 0
    cache = out / "mmvet_m2.reviews.jsonl"
    reviews = [json.loads(line) for line in cache.read_text().splitlines()]
    assert sorted(review["question_id"] for review in reviews) == ["v1_0", "v1_1"]
    metrics = json.loads((out / "mmvet_results.json").read_text())["results"]["2"]
    grades = [review["grade"] or 0.0 for review in reviews]
    assert metrics["total"] == pytest.approx(100 * sum(grades) / 2)
    assert metrics["unparsed"] == sum(review["grade"] is None for review in reviews)
    assert all(1 <= len(review["replies"]) <= 5 for review in reviews)
    before = cache.read_text()
    assert runner.run(_eval_args(*argv)) == 0
    assert cache.read_text() == before, "cached judge replies were not reused"


def _mmbench_tsv(path: Path) -> None:
    buffer = io.BytesIO()
    make_image(3).save(buffer, format="PNG")
    encoded = base64.b64encode(buffer.getvalue()).decode()
    header = ["index", "question", "hint", "A", "B", "C", "D", "answer", "category", "image"]
    rows = [["10", "Which shape?", "nan", "circle", "square", "triangle", "", "B", "shapes", encoded],
            ["11", "Which colour?", "A hint.", "red", "blue", "", "", "A", "colours", "10"]]  # fmt: skip
    path.write_text("\n".join("\t".join(row) for row in [header, *rows]) + "\n")


def test_mmbench_tsv_expands_rotations(tmp_path) -> None:
    """MMBench TSV layout: each question is asked once per rotation, its gold letter moving with its option."""
    _mmbench_tsv(tmp_path / "mmbench.tsv")
    questions = get_benchmark("mmbench").load(tmp_path / "mmbench.tsv", tmp_path, None)
    assert [q.question_id for q in questions] == ["10/r0", "10/r1", "10/r2", "11/r0", "11/r1"]
    assert [q.gold["answer"] for q in questions] == ["B", "A", "C", "A", "B"]
    assert questions[1].text == "Which shape?\nA. square\nB. triangle\nC. circle"
    assert questions[3].text.startswith("A hint.\nWhich colour?")
    prompt = get_benchmark("mmbench").prompt(questions[0])
    assert prompt.endswith("\nAnswer with the option's letter from the given choices directly.")
    from mqt_llava.evaluation.benchmarks import open_image

    assert open_image(questions[4].images[0]).size == make_image(3).size


def test_bad_inputs_get_clear_errors(pope_files, tiny_model_dir, tmp_path) -> None:
    """Bad input names its culprit: budgets, budgets above M, misaligned POPE labels, unreadable images."""
    with pytest.raises(ValueError, match="'x'"):
        runner.parse_budgets("2,x")
    with pytest.raises(ValueError, match=r"exceed the model's 16 queries \(valid: 1..16\)"):
        runner.run(
            _eval_args(*_pope_argv(pope_files, tiny_model_dir, tmp_path / "o")[:-6], "--num-visual-tokens", "32")
        )
    with pytest.raises(ValueError, match="unknown benchmark 'vqa3'"):
        get_benchmark("vqa3")
    labels = tmp_path / "labels"
    labels.mkdir()
    for split in ("random", "adversarial"):
        rows = [
            json.loads(line) for line in (pope_files / "labels" / f"coco_pope_{split}.json").read_text().splitlines()
        ]
        _write_jsonl(labels / f"coco_pope_{split}.json", rows[::-1])
    with pytest.raises(ValueError, match="not in the same order"):
        get_benchmark("pope").load(pope_files / "questions.jsonl", pope_files / "images", labels)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    from mqt_llava.evaluation.benchmarks import EncodedImage, open_image

    with pytest.raises(ValueError, match="broken.png"):
        open_image(broken)
    with pytest.raises(ValueError, match="mmbench.tsv line 3"):
        open_image(EncodedImage(data="AAAA", name="mmbench.tsv line 3"))


def test_llava_formats_join_their_gold_answers(tmp_path) -> None:
    """Benchmark formats: LLaVA question files joined with each benchmark's official annotation layout."""
    instruction = "Answer the question using a single word or phrase."
    questions = [{"question_id": 1, "image": "a.jpg", "text": f"How many?\n{instruction}"},
                 {"question_id": 2, "image": "b.jpg", "text": "Colour?"}]  # fmt: skip
    _write_jsonl(tmp_path / "q.jsonl", questions)
    (tmp_path / "vqav2.json").write_text(json.dumps({"annotations": [
        {"question_id": 1, "answer_type": "number", "answers": [{"answer": "2"}] * 10}]}))  # fmt: skip
    vqav2 = get_benchmark("vqav2")
    loaded = vqav2.load(tmp_path / "q.jsonl", tmp_path, tmp_path / "vqav2.json")
    assert loaded[0].gold == {"answers": ["2"] * 10, "answer_type": "number"} and loaded[1].gold is None
    assert vqav2.prompt(loaded[0]).count("single word") == 1  # the instruction is not repeated
    assert vqav2.prompt(loaded[1]) == "Colour?\nAnswer the question using a single word or phrase."

    (tmp_path / "vizwiz.json").write_text(json.dumps([{"image": "b.jpg", "answer_type": "unanswerable",
                                                       "answers": [{"answer": "unanswerable"}] * 10}]))  # fmt: skip
    loaded = get_benchmark("vizwiz").load(tmp_path / "q.jsonl", tmp_path, tmp_path / "vizwiz.json")
    assert loaded[0].gold is None and loaded[1].gold["answers"] == ["unanswerable"] * 10

    (tmp_path / "gqa.json").write_text(json.dumps({"1": {"answer": "two"}, "2": {"answer": "red"}}))
    loaded = get_benchmark("gqa").load(tmp_path / "q.jsonl", tmp_path, tmp_path / "gqa.json")
    assert [q.gold["answer"] for q in loaded] == ["two", "red"]

    (tmp_path / "sqa.json").write_text(json.dumps([
        {"id": "7", "image": "7/image.png",
         "conversations": [{"from": "human", "value": "<image>\nWhich?\nA. x\nB. y"}]},
        {"id": "8", "conversations": [{"from": "human", "value": "No image here?"}]}]))  # fmt: skip
    (tmp_path / "problems.json").write_text(json.dumps({"7": {"answer": 1, "choices": ["x", "y"], "subject": "nat"}}))
    loaded = get_benchmark("scienceqa_img").load(tmp_path / "sqa.json", tmp_path, tmp_path / "problems.json")
    assert [(q.question_id, q.text, q.gold["answer"]) for q in loaded] == [("7", "Which?\nA. x\nB. y", "B")]

    mme_folder = tmp_path / "MME" / "count"
    mme_folder.mkdir(parents=True)
    (mme_folder / "0001.txt").write_text("Are there two dogs? Please answer yes or no.\tYes\n"
                                         "Are there three dogs? Please answer yes or no.\tNo\n")  # fmt: skip
    _write_jsonl(tmp_path / "mme.jsonl", [
        {"question_id": "count/0001.png", "image": "count/0001.png", "category": "count",
         "text": f"Are there {n} dogs? Please answer yes or no.\nAnswer the question using a single word or phrase."}
        for n in ("two", "three")])  # fmt: skip
    loaded = get_benchmark("mme").load(tmp_path / "mme.jsonl", tmp_path, tmp_path / "MME")
    assert [(q.question_id, q.gold["answer"], q.gold["image"]) for q in loaded] == [
        ("count/0001.png#1", "Yes", "count/0001.png"), ("count/0001.png#2", "No", "count/0001.png")]  # fmt: skip

    _write_jsonl(tmp_path / "mmmu.jsonl", [
        {"question_id": "validation_Art_1", "images": ["m1.png", "m2.png"], "text": "Which <image 1>?",
         "options": ["p", "q"], "answer": "A", "question_type": "multiple-choice", "subject": "Art"},
        {"question_id": "validation_Math_1", "image": "m3.png", "text": "How much?", "answer": "3",
         "question_type": "open"}])  # fmt: skip
    mmmu = get_benchmark("mmmu")
    loaded = mmmu.load(tmp_path / "mmmu.jsonl", tmp_path, None)
    assert len(loaded[0].images) == 2
    assert mmmu.prompt(loaded[0]) == ("Which <image 1>?\n(A) p\n(B) q\n"
                                      "Answer with the option's letter from the given choices directly.")  # fmt: skip
    assert mmmu.prompt(loaded[1]).endswith("\nAnswer the question using a single word or phrase.")


def test_private_split_gets_a_submission_file(tmp_path) -> None:
    """VQAv2 test-dev has no public answers: scoring writes the evaluation server's submission file instead."""
    _write_jsonl(tmp_path / "q.jsonl", [{"question_id": 5, "image": "a.jpg", "text": "How many?"}])
    out = tmp_path / "out"
    out.mkdir()
    _write_jsonl(out / "vqav2_m8.jsonl", [{"question_id": "5", "text": "Two."}])
    argv = ["--benchmark", "vqav2", "--questions", str(tmp_path / "q.jsonl"), "--answers", str(out), "--score-only"]
    assert runner.run(_eval_args(*argv)) == 0
    assert json.loads((out / "vqav2_m8_submission.json").read_text()) == [{"question_id": 5, "answer": "2"}]


@pytest.fixture
def chat_server():
    """A local OpenAI-compatible `/chat/completions` endpoint (as vLLM would serve) answering from a script of
    replies; yields (base url, the requests received, the replies still to give)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    received: list[dict] = []
    replies: list[str] = []

    class ChatCompletions(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the http.server hook name
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append({"path": self.path, "auth": self.headers.get("Authorization"), **body})
            reply = json.dumps({"choices": [{"message": {"role": "assistant", "content": replies.pop(0)}}]})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(reply.encode())

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), ChatCompletions)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/v1", received, replies
    finally:
        server.shutdown()


def test_llava_bench_graded_through_an_openai_compatible_endpoint(tmp_path, monkeypatch, chat_server) -> None:
    """LLaVA-Bench with a judge behind an OpenAI-compatible HTTP endpoint: the request carries the key, the model
    name, the user's system text and rule in the review layout; scores come from the reply."""
    url, received, replies = chat_server
    replies.append("8 6\nBoth fine.")
    files = _llava_bench_files(tmp_path / "bench")
    out = tmp_path / "out"
    out.mkdir()
    _write_jsonl(out / "llava_bench_m4.jsonl", [{"question_id": "0", "text": "A square."}])
    monkeypatch.setenv("TEST_JUDGE_KEY", "secret")
    argv = ["--benchmark", "llava_bench", "--questions", str(files / "questions.jsonl"), "--answers", str(out),
            "--score-only", "--judge-model", "judge-1", "--judge-api-base", url, "--judge-api-key-env",
            "TEST_JUDGE_KEY", "--judge-prompts", str(_prompts_file(tmp_path / "prompts.json"))]  # fmt: skip
    assert runner.run(_eval_args(*argv)) == 0
    assert len(received) == 1
    request = received[0]
    assert request["path"] == "/v1/chat/completions" and request["auth"] == "Bearer secret"
    assert request["model"] == "judge-1"
    assert request["messages"][0] == {"role": "system", "content": FAKE_PROMPTS["llava_bench_system"]}
    user = request["messages"][1]["content"]
    assert user.startswith("[Context]\nA square on noise.\n\n[Question]\nWhat is odd here?")
    assert "[Assistant 1]\nThe square is odd.\n\n[End of Assistant 1]" in user
    assert "[Assistant 2]\nA square.\n\n[End of Assistant 2]" in user
    assert user.endswith(f"[System]\n{FAKE_PROMPTS['llava_bench_rule']}\n\n")
    metrics = json.loads((out / "llava_bench_results.json").read_text())["results"]["4"]
    assert metrics["relative_score"] == pytest.approx(75.0)
    assert metrics["relative_score/complex"] == pytest.approx(75.0)

    changed = {**FAKE_PROMPTS, "llava_bench_rule": "RULE: another wording."}
    replies.append("8 4\nWorse.")
    assert runner.run(_eval_args(*argv[:-1], str(_prompts_file(tmp_path / "other.json", **changed)))) == 0
    assert len(received) == 2, "a verdict given with other prompts was reused"
    assert json.loads((out / "llava_bench_results.json").read_text())["results"]["4"]["relative_score"] == 50.0


def test_mmvet_retries_until_the_judge_gives_a_grade(tmp_path, chat_server) -> None:
    """MM-Vet's retry loop: an unreadable reply is asked again with the user's retry suffix appended and a higher
    temperature; the first readable grade counts."""
    url, received, replies = chat_server
    replies.extend(["maybe", "0.5"])
    make_image(1).save(tmp_path / "v1_0.png")
    (tmp_path / "mm-vet.json").write_text(json.dumps(
        {"v1_0": {"imagename": "v1_0.png", "capability": ["rec"], "question": "What?", "answer": "a<OR>b"}}))  # fmt: skip
    out = tmp_path / "out"
    out.mkdir()
    _write_jsonl(out / "mmvet_m2.jsonl", [{"question_id": "v1_0", "text": "b"}])
    argv = ["--benchmark", "mmvet", "--questions", str(tmp_path / "mm-vet.json"), "--answers", str(out),
            "--score-only", "--judge-model", "judge-1", "--judge-api-base", url,
            "--judge-prompts", str(_prompts_file(tmp_path / "prompts.json"))]  # fmt: skip
    assert runner.run(_eval_args(*argv)) == 0
    row = f"{FAKE_PROMPTS['mmvet_prompt']}\nWhat? | a <OR> b | b | "
    assert [r["messages"] for r in received] == [
        [{"role": "user", "content": row}],
        [{"role": "user", "content": row + FAKE_PROMPTS["mmvet_retry_suffix"]}],
    ]
    assert [r["temperature"] for r in received] == [0.0, 0.5]
    assert json.loads((out / "mmvet_results.json").read_text())["results"]["2"]["total"] == pytest.approx(50.0)


def test_lenient_parsing_is_an_explicit_option_recorded_in_the_results(tmp_path, caplog) -> None:
    """Scoring follows the reference evaluation unless --lenient-parsing is given; the results file says which
    reading was used, and a benchmark without a forgiving reading says so and is scored by the reference."""
    rows = [{"question_id": str(i), "image": "x.png", "text": "Which?", "answer": "B", "options": ["cat", "dog"]}
            for i in range(2)]  # fmt: skip
    _write_jsonl(tmp_path / "sqa.jsonl", rows)
    out = tmp_path / "sqa_out"
    out.mkdir()
    # "(B)" fails ScienceQA's reference parser (llava/eval/eval_science_qa.py); the forgiving reading takes it.
    answers = [{"question_id": "0", "text": "B"}, {"question_id": "1", "text": "(B)"}]
    _write_jsonl(out / "scienceqa_img_m4.jsonl", answers)
    argv = ["--benchmark", "scienceqa_img", "--questions", str(tmp_path / "sqa.jsonl"), "--answers", str(out),
            "--score-only"]  # fmt: skip
    assert runner.run(_eval_args(*argv)) == 0
    results = json.loads((out / "scienceqa_img_results.json").read_text())
    assert results["parsing"] == "reference" and results["results"]["4"]["accuracy"] == 50.0
    assert "lenient" not in (out / "scienceqa_img_results.md").read_text()
    assert runner.run(_eval_args(*argv, "--lenient-parsing")) == 0
    results = json.loads((out / "scienceqa_img_results.json").read_text())
    assert results["parsing"] == "lenient" and results["results"]["4"]["accuracy"] == 100.0
    assert "lenient parsing" in (out / "scienceqa_img_results.md").read_text().splitlines()[0]

    _write_jsonl(tmp_path / "pope.jsonl", [{"question_id": "0", "image": "x.png", "text": "Is there a cat?",
                                            "label": "yes", "category": "random"}])  # fmt: skip
    pope_out = tmp_path / "pope_out"
    pope_out.mkdir()
    _write_jsonl(pope_out / "pope_m4.jsonl", [{"question_id": "0", "text": "Yes"}])
    with caplog.at_level(logging.WARNING):
        assert runner.run(_eval_args("--benchmark", "pope", "--questions", str(tmp_path / "pope.jsonl"),
                                     "--answers", str(pope_out), "--score-only", "--lenient-parsing")) == 0  # fmt: skip
    assert "POPE has no lenient reading" in caplog.text
    assert json.loads((pope_out / "pope_results.json").read_text())["parsing"] == "reference"


def test_shapes_vqa_without_questions_writes_the_demo_split(tiny_model_dir, tmp_path) -> None:
    """`mqt-llava eval --benchmark shapes_vqa` needs no question file: it writes the test split the demo evaluates
    (seed 0, the demo's number of scenes) next to the answers and scores it. Other benchmarks still need one."""
    from mqt_llava.demo.cli import DEFAULT_TEST_SCENES
    from mqt_llava.evaluation.shapes_vqa.export import export_split

    out = tmp_path / "out"
    argv = ["--model", str(tiny_model_dir), "--benchmark", "shapes_vqa", "--answers", str(out),
            "--num-visual-tokens", "2", "--limit", "6", "--batch-size", "6", "--max-new-tokens", "2"]  # fmt: skip
    assert runner.run(_eval_args(*argv)) == 0
    expected = export_split(tmp_path / "expected", "test", DEFAULT_TEST_SCENES, seed=0)
    assert (out / "split" / "test_questions.jsonl").read_bytes() == expected.questions.read_bytes()
    assert (out / "split" / "images" / "test-00000.png").is_file()
    metrics = json.loads((out / "shapes_vqa_results.json").read_text())["results"]["2"]
    assert metrics["num_gradable"] == 6 and metrics["num_answered"] == 6
    with pytest.raises(ValueError, match="--questions is required for gqa"):
        runner.run(_eval_args("--benchmark", "gqa", "--answers", str(tmp_path / "gqa"), "--score-only"))
