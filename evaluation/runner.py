"""`mqt-llava eval`: answer a benchmark at several token budgets, resumably, then score it.

For each budget m the answers go to `<answers>/<benchmark>_m<m>.jsonl`, one line per question, appended and flushed
after every batch; a re-run skips the question ids already there, so an interrupted run resumes where it stopped.
Scoring writes `<benchmark>_results.json`, a markdown table `<benchmark>_results.md` and a plot
`<benchmark>_results.png` (the benchmark's main metric against m). `--score-only` scores existing answer files
without loading a model. Scoring follows each benchmark's reference evaluation code; `--lenient-parsing` picks the
more forgiving answer reading where a benchmark has one, and the results file records which was used ("parsing").
Shapes-VQA needs no download: without `--questions` the runner writes the test split `mqt-llava demo` uses.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from tqdm.auto import tqdm

from .benchmarks import BENCHMARKS, Benchmark, Question, get_benchmark, open_image
from .judge import (
    PROMPT_KEYS,
    PROMPT_SOURCES,
    JudgePrompts,
    build_judge,
    judge_samples,
    load_judge_prompts,
)

logger = logging.getLogger(__name__)

PAPER_BUDGETS = (2, 4, 8, 16, 36, 64, 144, 256)
SHAPES_VQA_SEED = 0
_ANSWER_FILE = re.compile(r"_m(\d+)\.jsonl$")


def parse_budgets(text: str) -> list[int]:
    """Budgets from the command line, e.g. `2,4,16` -> [2, 4, 16]; a bad item raises a ValueError naming it."""
    budgets = []
    for item in text.split(","):
        item = item.strip()
        if not item.isdigit() or int(item) < 1:
            raise ValueError(
                f"--num-visual-tokens takes integers in 1..M (M: the model's number of queries) separated by commas, "
                f"got {item!r} in {text!r}"
            )
        budgets.append(int(item))
    return sorted(set(budgets))


def write_shapes_vqa_split(out_dir: Path) -> Path:
    """Writes the Shapes-VQA test split `mqt-llava demo` evaluates (seed 0, its default number of scenes) to
    `out_dir` and returns its question file. The export is deterministic: the same files every time."""
    from .shapes_vqa import DEFAULT_TEST_SCENES, export_split

    files = export_split(out_dir, "test", DEFAULT_TEST_SCENES, SHAPES_VQA_SEED)
    logger.info("shapes_vqa: wrote the test split (seed %d, %d scenes) to %s", SHAPES_VQA_SEED, DEFAULT_TEST_SCENES,
                out_dir)  # fmt: skip
    return files.questions


def answers_path(out_dir: Path, benchmark: str, num_visual_tokens: int) -> Path:
    return Path(out_dir) / f"{benchmark}_m{num_visual_tokens}.jsonl"


def read_answers(path: Path) -> dict[str, dict]:
    """Answers already written, by question id. A last line cut short by a killed run is removed from the file."""
    if not path.exists():
        return {}
    answers: dict[str, dict] = {}
    good_bytes = 0
    with open(path, "rb") as handle:
        lines = handle.readlines()
    for number, raw in enumerate(lines, start=1):
        try:
            row = json.loads(raw)
            if not raw.endswith(b"\n"):
                raise ValueError("no line end")
        except ValueError as error:
            if number == len(lines):
                logger.warning("%s: dropping an incomplete last line left by an interrupted run", path)
                with open(path, "r+b") as handle:
                    handle.truncate(good_bytes)
                break
            raise ValueError(f"{path}:{number} is not a valid answer line: {error}") from error
        answers[str(row["question_id"])] = row
        good_bytes += len(raw)
    return answers


def load_model(model_dir: str, device: str | None, dtype_name: str):
    """The model and processor of a saved folder, through the Auto classes with its remote code."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if dtype_name == "auto":
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    else:
        dtype = getattr(torch, dtype_name)
    model = AutoModelForImageTextToText.from_pretrained(model_dir, trust_remote_code=True, dtype=dtype)
    processor = AutoProcessor.from_pretrained(model_dir, trust_remote_code=True)
    return model.to(device).eval(), processor


def _conversation(benchmark: Benchmark, question: Question) -> list[dict]:
    content = [{"type": "image", "image": open_image(source)} for source in question.images]
    content.append({"type": "text", "text": benchmark.prompt(question)})
    return [{"role": "user", "content": content}]


def answer_conversations(
    model, processor, conversations: Sequence[list[dict]], num_visual_tokens: int | None, **generate_kwargs
) -> list[str]:
    """Generates one reply per conversation (a batch, left-padded) with m = `num_visual_tokens` visual tokens per
    image (None: the processor's default). Returns the decoded new text of each reply."""
    import torch

    inputs = processor.apply_chat_template(
        list(conversations),
        add_generation_prompt=True,
        tokenize=True,
        return_dict=True,
        return_tensors="pt",
        processor_kwargs={"padding": True, "padding_side": "left", "num_visual_tokens": num_visual_tokens},
    ).to(model.device)
    if "pixel_values" in inputs:
        inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
    with torch.inference_mode():
        output = model.generate(**inputs, num_visual_tokens=num_visual_tokens, **generate_kwargs)
    return processor.batch_decode(output[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)


def generate_answers(
    model,
    processor,
    benchmark: Benchmark,
    questions: Sequence[Question],
    num_visual_tokens: int,
    path: Path,
    batch_size: int = 8,
    max_new_tokens: int | None = None,
) -> int:
    """Answers the questions not yet in `path` with m = `num_visual_tokens`, appending one JSON line per question
    and flushing after each batch. Returns the number of new answers."""
    done = read_answers(path)
    pending = [question for question in questions if question.question_id not in done]
    if not pending:
        return 0
    max_new_tokens = max_new_tokens or benchmark.max_new_tokens
    model_id = Path(str(getattr(model, "name_or_path", "") or "model")).name
    progress = tqdm(total=len(questions), initial=len(questions) - len(pending), unit="q",
                    desc=f"{benchmark.name} m={num_visual_tokens}")  # fmt: skip
    with open(path, "a", encoding="utf-8") as handle:
        for start in range(0, len(pending), batch_size):
            batch = pending[start : start + batch_size]
            conversations = [_conversation(benchmark, question) for question in batch]
            texts = answer_conversations(model, processor, conversations, num_visual_tokens,
                                         max_new_tokens=max_new_tokens, do_sample=False)  # fmt: skip
            for question, text in zip(batch, texts, strict=True):
                row = {"question_id": question.question_id, "prompt": benchmark.prompt(question), "text": text.strip(),
                       "num_visual_tokens": num_visual_tokens, "model_id": model_id}  # fmt: skip
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
            progress.update(len(batch))
    progress.close()
    return len(pending)


def score_budget(
    benchmark: Benchmark,
    questions: Sequence[Question],
    answers: dict[str, dict],
    judge,
    judge_cache: Path,
    judge_prompts: JudgePrompts | None = None,
    lenient: bool = False,
) -> dict[str, float] | None:
    """Metrics of one answer file (plus coverage counts); None when nothing can be scored. Judge-graded benchmarks
    need `judge` and `judge_prompts`; `lenient` picks the benchmark's forgiving answer reading, if it has one."""
    gradable = [question for question in questions if question.gold is not None]
    samples = [
        {**question.gold, "question_id": question.question_id, "prediction": answers[question.question_id]["text"]}
        for question in gradable
        if question.question_id in answers
    ]
    if not samples:
        return None
    if len(samples) < len(gradable):
        logger.warning("%s: %d of %d gradable questions have no answer yet; scoring the %d answered",
                       benchmark.name, len(gradable) - len(samples), len(gradable), len(samples))  # fmt: skip
    if benchmark.judge_task is not None:
        samples = judge_samples(benchmark.judge_task, samples, judge, judge_cache, judge_prompts)
    metrics = benchmark.scorer(lenient)(samples)
    metrics["num_answered"] = float(len(samples))
    metrics["num_gradable"] = float(len(gradable))
    return metrics


def _format(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def write_results(
    out_dir: Path, benchmark: Benchmark, model: str | None, results: dict[int, dict], parsing: str = "reference"
) -> list[Path]:
    """Writes the results JSON, a markdown table and a PNG plot of the main metric against m; returns their paths.
    `parsing` ("reference" or "lenient") is recorded in the JSON and, when lenient, in the table's title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stem = Path(out_dir) / f"{benchmark.name}_results"
    budgets = sorted(results)
    payload = {"benchmark": benchmark.name, "title": benchmark.title, "model": model, "metric": benchmark.headline,
               "parsing": parsing, "results": {str(m): results[m] for m in budgets}}  # fmt: skip
    json_path = stem.with_suffix(".json")
    json_path.write_text(json.dumps(payload, indent=2) + "\n")

    columns = [benchmark.headline, *benchmark.table_metrics]
    lines = [f"| m | {' | '.join(columns)} | answered |", "|---" * (len(columns) + 2) + "|"]
    for m in budgets:
        cells = [_format(results[m].get(name)) for name in columns]
        answered = f"{int(results[m]['num_answered'])}/{int(results[m]['num_gradable'])}"
        lines.append(f"| {m} | {' | '.join(cells)} | {answered} |")
    table_path = stem.with_suffix(".md")
    mode = ", lenient parsing" if parsing == "lenient" else ""
    table_path.write_text(f"{benchmark.title} ({benchmark.headline}{mode})\n\n" + "\n".join(lines) + "\n")

    figure, axis = plt.subplots(figsize=(5, 3.2))
    values = [results[m][benchmark.headline] for m in budgets]
    axis.plot(budgets, values, marker="o")
    for m, value in zip(budgets, values, strict=True):
        axis.annotate(f"{value:.1f}", (m, value), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=8)
    axis.set_xscale("log", base=2)
    axis.set_xticks(budgets, [str(m) for m in budgets])
    axis.set_xlabel("visual tokens m")
    axis.set_ylabel(benchmark.headline)
    axis.set_title(f"{benchmark.title}: {benchmark.headline} against m")
    axis.grid(alpha=0.3)
    figure.tight_layout()
    plot_path = stem.with_suffix(".png")
    figure.savefig(plot_path, dpi=120)
    plt.close(figure)
    return [json_path, table_path, plot_path]


def _existing_budgets(out_dir: Path, benchmark: str) -> list[int]:
    return sorted(
        int(match.group(1))
        for path in Path(out_dir).glob(f"{benchmark}_m*.jsonl")
        if (match := _ANSWER_FILE.search(path.name)) and path.name == f"{benchmark}_m{match.group(1)}.jsonl"
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="model folder (or Hub id); not needed with --score-only")
    parser.add_argument("--benchmark", required=True, choices=sorted(BENCHMARKS))
    parser.add_argument("--questions", type=Path, help="question file (JSONL / JSON / TSV); required except for "
                        "shapes_vqa, which without it writes the demo's test split to <answers>/split")  # fmt: skip
    parser.add_argument("--images", type=Path, help="folder the question file's image paths are relative to")
    parser.add_argument("--annotations", type=Path, help="gold answers, when they are not in the question file")
    parser.add_argument("--answers", type=Path, help="output folder (default: eval_results/<benchmark>)")
    parser.add_argument("--num-visual-tokens", help="budgets m, e.g. 2,4,8,16,36,64,144,256 (default: the "
                        "paper's sweep up to the model's M; with --score-only: every answer file found)")  # fmt: skip
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, help="default: the benchmark's own (16 for short answers)")
    parser.add_argument("--limit", type=int, help="only the first N questions (a quick check)")
    parser.add_argument("--score-only", action="store_true", help="score existing answer files, load no model")
    parser.add_argument("--lenient-parsing", action="store_true", help="read answers more forgivingly where the "
                        "benchmark allows it (ScienceQA-IMG, GQA, VizWiz) instead of exactly as its reference "
                        "evaluation code does; the scores are then not comparable with published ones")  # fmt: skip
    parser.add_argument("--device", help="default: cuda when available, else cpu")
    parser.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    parser.add_argument("--judge-model", help="judge for llava_bench / mmvet: a local chat-model folder, or a model "
                        "name behind an OpenAI-compatible endpoint (e.g. gpt-4-0613)")  # fmt: skip
    parser.add_argument("--judge-api-base", help="OpenAI-compatible endpoint (default: https://api.openai.com/v1)")
    parser.add_argument("--judge-api-key-env", default="OPENAI_API_KEY", help="environment variable with the key")
    parser.add_argument("--judge-prompts", type=Path, help="JSON file with the benchmark's official grading texts "
                        "(llava_bench_system, llava_bench_rule, mmvet_prompt, mmvet_retry_suffix), copied by you from "
                        "the LLaVA / MM-Vet repositories; LLaVA's rule.json is accepted for llava_bench_rule")  # fmt: skip


def _answer_budgets(args: argparse.Namespace, benchmark: Benchmark, questions: list[Question], out_dir: Path,
                    budgets: list[int] | None) -> list[int]:  # fmt: skip
    """Loads the model and answers every budget not complete yet; returns the budgets (default: the paper's <= M)."""
    question_ids = {question.question_id for question in questions}
    if budgets is not None and all(
        question_ids <= read_answers(answers_path(out_dir, benchmark.name, m)).keys() for m in budgets
    ):
        return budgets
    if not args.model:
        raise ValueError("--model is required unless --score-only is given")
    model, processor = load_model(args.model, args.device, args.dtype)
    num_queries = model.config.num_queries
    budgets = budgets or [m for m in PAPER_BUDGETS if m <= num_queries] or [num_queries]
    too_large = [m for m in budgets if m > num_queries]
    if too_large:
        raise ValueError(f"--num-visual-tokens {too_large} exceed the model's {num_queries} queries "
                         f"(valid: 1..{num_queries})")  # fmt: skip
    for m in budgets:
        path = answers_path(out_dir, benchmark.name, m)
        written = generate_answers(
            model, processor, benchmark, questions, m, path, args.batch_size, args.max_new_tokens
        )
        logger.info("%s m=%d: %d new answers in %s", benchmark.name, m, written, path)
    return budgets


def _write_submissions(benchmark: Benchmark, questions: list[Question], out_dir: Path, budgets: list[int]) -> None:
    """For splits whose answers are private: the evaluation server's submission file per budget, if it has one."""
    if benchmark.submission is None:
        logger.warning("%s: the questions carry no gold answers (pass --annotations?); nothing scored. The answers "
                       "are in %s", benchmark.name, out_dir)  # fmt: skip
        return
    for m in budgets:
        answers = {qid: row["text"] for qid, row in read_answers(answers_path(out_dir, benchmark.name, m)).items()}
        path = Path(out_dir) / f"{benchmark.name}_m{m}_submission.json"
        path.write_text(json.dumps(benchmark.submission(questions, answers)) + "\n")
        logger.info("%s has no public answers: submission file for its server written to %s", benchmark.name, path)


def run(args: argparse.Namespace) -> int:
    benchmark = get_benchmark(args.benchmark)
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}")
    out_dir = args.answers or Path("eval_results") / benchmark.name
    questions_path = args.questions
    if questions_path is None:
        if benchmark.name != "shapes_vqa":
            raise ValueError(f"--questions is required for {benchmark.name} (only shapes_vqa writes its own split)")
        questions_path = write_shapes_vqa_split(out_dir / "split")
    if not questions_path.exists():
        raise FileNotFoundError(f"--questions {questions_path} does not exist")
    questions = benchmark.load(questions_path, args.images or questions_path.parent, args.annotations)
    if args.limit:
        questions = questions[: args.limit]
    out_dir.mkdir(parents=True, exist_ok=True)
    budgets = parse_budgets(args.num_visual_tokens) if args.num_visual_tokens else None
    if not args.score_only:
        budgets = _answer_budgets(args, benchmark, questions, out_dir, budgets)
    budgets = budgets or _existing_budgets(out_dir, benchmark.name)
    if not budgets:
        raise ValueError(f"no answer files {benchmark.name}_m<m>.jsonl in {out_dir} to score")
    if not any(question.gold is not None for question in questions):
        _write_submissions(benchmark, questions, out_dir, budgets)
        return 0

    judge = prompts = None
    if benchmark.judge_task is not None:
        if args.judge_prompts is None:
            logger.warning(
                "%s is graded by a language model reading the benchmark's official grading texts, which this package "
                "does not ship: pass them with --judge-prompts FILE, a JSON object with the keys %s copied from %s. "
                "Nothing was scored; the answers are in %s (score them later with --score-only).",
                benchmark.title,
                " and ".join(PROMPT_KEYS[benchmark.judge_task]),
                PROMPT_SOURCES[benchmark.judge_task],
                out_dir,
            )
            return 0
        prompts = load_judge_prompts(args.judge_prompts, benchmark.judge_task)
        judge = build_judge(args.judge_model, args.judge_api_base, args.judge_api_key_env)
        if judge is None:
            logger.warning(
                "%s is graded by a language model and no judge is configured (--judge-model): nothing was scored. "
                "The answers are in %s; score them later with --score-only --judge-model NAME --judge-prompts FILE.",
                benchmark.title,
                out_dir,
            )
            return 0

    lenient = args.lenient_parsing and benchmark.lenient_score is not None
    if args.lenient_parsing and not lenient:
        logger.warning("%s has no lenient reading: scored exactly as its reference evaluation does", benchmark.title)
    results = {}
    for m in budgets:
        path = answers_path(out_dir, benchmark.name, m)
        answers = read_answers(path)
        metrics = score_budget(benchmark, questions, answers, judge, path.with_suffix(".reviews.jsonl"), prompts,
                               lenient)  # fmt: skip
        if metrics is None:
            logger.warning("%s: no answer in %s matches a gradable question; m=%d not scored", benchmark.name, path, m)
        else:
            results[m] = metrics
    if not results:
        return 1
    for path in write_results(out_dir, benchmark, args.model, results, "lenient" if lenient else "reference"):
        logger.info("wrote %s", path)
    sys.stdout.write((Path(out_dir) / f"{benchmark.name}_results.md").read_text())
    return 0


__all__ = [
    "PAPER_BUDGETS",
    "add_arguments",
    "answer_conversations",
    "answers_path",
    "generate_answers",
    "load_model",
    "parse_budgets",
    "read_answers",
    "run",
    "write_shapes_vqa_split",
]
