"""Benchmarks: their question and annotation formats, their LLaVA-1.5 evaluation prompts and their scorers.

Each benchmark reads the files its download (or LLaVA's evaluation pack) provides and turns them into `Question`s:
an id, the question text, its images, and the gold fields its scorer reads (None where the split's answers are
private, e.g. VQAv2 test-dev: such answers are sent to the benchmark's server instead). The prompt a model sees is
the question text followed by the benchmark's instruction, as in LLaVA-1.5's evaluation scripts.

Formats read (paths are what `mqt-llava eval` takes as --questions / --annotations; images under --images):
    question JSONL      LLaVA's `{"question_id", "image", "text", "category"?}` lines; gold fields may be inline
                        (`answer`, `answers`, `label`, `options`, ...), which is also Shapes-VQA's export format
    vqav2, textvqa      + official annotation JSON (`{"annotations": [...]}` / `{"data": [...]}`) joined on question_id
    vizwiz              + official annotation JSON (a list of records) joined on the image name
    gqa                 + `testdev_balanced_questions.json` joined on question_id
    pope                + folder of `coco_pope_{random,popular,adversarial}.json` label files, aligned per split in
                        file order as LLaVA does
    scienceqa_img       LLaVA's `llava_test_CQM-A.json` + ScienceQA's `problems.json`; questions without an image
                        are left out (the IMG subset)
    mme                 LLaVA's `llava_mme.jsonl` + MME's release folder (`<subtask>/**/<image>.txt` holding
                        "question<TAB>answer" lines), or JSONL with inline `answer`, or a TSV (index, image in
                        base64, question, answer, category)
    mmbench             the official TSV (index, question, hint, A-D, answer, category, image in base64); each
                        question is asked once per rotation of its options
    llava_bench         `questions.jsonl` + folder with `context.jsonl` and `answers_gpt4.jsonl` (default: the
                        questions' folder)
    mmvet               `mm-vet.json`
    mmmu                question JSONL with `options`, `answer`, `question_type`, `subject`, `images` (or `image`)
"""

from __future__ import annotations

import base64
import csv
import io
import json
import logging
import sys
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from .scorers import (
    normalize_vqa_answer,
    rotate_options,
    score_exact_match,
    score_gqa,
    score_llava_bench,
    score_mmbench,
    score_mme,
    score_mmmu,
    score_mmvet,
    score_multiple_choice,
    score_pope,
    score_vqa,
)
from .scorers.choice import OPTION_LETTERS

logger = logging.getLogger(__name__)

SHORT_ANSWER_PROMPT = "Answer the question using a single word or phrase."
OPTION_LETTER_PROMPT = "Answer with the option's letter from the given choices directly."
UNANSWERABLE_PROMPT = "When the provided information is insufficient, respond with 'Unanswerable'."
IMAGE_PLACEHOLDER = "<image>"


@dataclass(frozen=True)
class EncodedImage:
    """An image stored inside a data file (base64), named after where it came from for error messages."""

    data: str
    name: str


ImageSource = Path | EncodedImage


@dataclass(frozen=True)
class Question:
    """One question: `text` is the question as written, `gold` what its scorer reads besides the prediction (None
    when the split's answers are not public), `instruction` replaces the benchmark's own for this question."""

    question_id: str
    text: str
    images: tuple[ImageSource, ...]
    gold: dict[str, Any] | None
    instruction: str | None = None


@dataclass(frozen=True)
class Benchmark:
    """A benchmark: how to read it, how to prompt for it and how to score it."""

    name: str
    title: str
    load: Callable[[Path, Path, Path | None], list[Question]]
    score: Callable[[list[dict]], dict[str, float]]
    headline: str
    instruction: str = ""
    max_new_tokens: int = 16
    table_metrics: tuple[str, ...] = ()
    judge_task: str | None = None
    submission: Callable[[list[Question], dict[str, str]], list[dict]] | None = field(default=None, repr=False)
    lenient_score: Callable[[list[dict]], dict[str, float]] | None = field(default=None, repr=False)

    def scorer(self, lenient: bool = False) -> Callable[[list[dict]], dict[str, float]]:
        """The reference scorer; with `lenient`, the more forgiving one where the benchmark has one."""
        return self.lenient_score if lenient and self.lenient_score is not None else self.score

    def prompt(self, question: Question) -> str:
        """The question followed by the benchmark's instruction (not repeated when the text already ends with it)."""
        text = question.text.strip()
        instruction = self.instruction if question.instruction is None else question.instruction
        if not instruction or text.endswith(instruction):
            return text
        return f"{text}\n{instruction}"


def open_image(source: ImageSource) -> Image.Image:
    """Opens an image file or a base64 image as RGB; an unreadable one raises a ValueError naming it."""
    try:
        if isinstance(source, EncodedImage):
            image = Image.open(io.BytesIO(base64.b64decode(source.data)))
        else:
            image = Image.open(source)
        image.load()
    except (OSError, ValueError) as error:
        name = source.name if isinstance(source, EncodedImage) else str(source)
        raise ValueError(f"Cannot read image {name}: {error}") from error
    return image.convert("RGB")


def read_jsonl(path: Path) -> list[dict]:
    """The JSON objects of a JSONL file; a malformed line raises a ValueError naming the file and line."""
    rows = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{number} is not valid JSON: {error}") from error
    return rows


def read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from error


def read_tsv(path: Path) -> list[dict[str, str]]:
    """Rows of a TSV file with a header line (MMBench / MME layouts: base64 images make very long fields)."""
    csv.field_size_limit(sys.maxsize)
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def _require(row: dict, keys: Sequence[str], where: str) -> None:
    missing = [key for key in keys if key not in row]
    if missing:
        raise ValueError(f"{where} lacks the field(s) {missing}; it has {sorted(row)}")


def _clean_text(text: str) -> str:
    """Question text without `<image>` placeholders (the chat template places the images)."""
    return text.replace(IMAGE_PLACEHOLDER, "").strip()


def _check_unique(questions: list[Question], path: Path) -> list[Question]:
    seen: set[str] = set()
    for question in questions:
        if question.question_id in seen:
            raise ValueError(f"{path}: question_id {question.question_id!r} appears more than once")
        seen.add(question.question_id)
    return questions


GOLD_FIELDS = ("answer", "answers", "label", "options", "answer_type", "question_type", "subject", "capabilities")


def _jsonl_questions(path: Path, images_dir: Path, gold_keys: Sequence[str] = ()) -> tuple[list[Question], list[dict]]:
    """Questions of a LLaVA question JSONL; gold holds the inline fields (None unless all `gold_keys` are there)."""
    rows = read_jsonl(path)
    questions = []
    for number, row in enumerate(rows, start=1):
        _require(row, ("question_id", "text"), f"{path} line {number}")
        names = row.get("images") or ([row["image"]] if row.get("image") else [])
        gold = {key: row[key] for key in (*GOLD_FIELDS, "category") if key in row}
        has_gold = bool(gold_keys) and all(key in row for key in gold_keys)
        questions.append(
            Question(
                question_id=str(row["question_id"]),
                text=_clean_text(row["text"]),
                images=tuple(images_dir / name for name in names),
                gold=gold if has_gold else None,
            )
        )
    return _check_unique(questions, path), rows


def _with_gold(question: Question, gold: dict[str, Any] | None) -> Question:
    return Question(question.question_id, question.text, question.images, gold, question.instruction)


def _category_only(row: dict) -> dict[str, Any]:
    return {"category": row["category"]} if "category" in row else {}


# --- short-answer VQA -----------------------------------------------------------------------------------------


def _vqa_annotations(path: Path) -> tuple[str, dict[str, dict]]:
    """Reads VQAv2 / TextVQA / VizWiz annotations -> (join key "question_id" or "image", key -> gold)."""
    data = read_json(path)
    if isinstance(data, dict) and "annotations" in data:  # VQAv2
        return "question_id", {
            str(item["question_id"]): {
                "answers": [answer["answer"] for answer in item["answers"]],
                "answer_type": item.get("answer_type"),
            }
            for item in data["annotations"]
        }
    if isinstance(data, dict) and "data" in data:  # TextVQA
        return "question_id", {str(item["question_id"]): {"answers": list(item["answers"])} for item in data["data"]}
    if isinstance(data, list):  # VizWiz
        return "image", {
            Path(item["image"]).name: {
                "answers": [answer["answer"] for answer in item["answers"]],
                "answer_type": item.get("answer_type"),
            }
            for item in data
            if item.get("answers")
        }
    raise ValueError(f"{path} is not a VQAv2, TextVQA or VizWiz annotation file")


def load_vqa(questions_path: Path, images_dir: Path, annotations: Path | None) -> list[Question]:
    questions, rows = _jsonl_questions(questions_path, images_dir, gold_keys=("answers",))
    if annotations is None:
        # inline human answers may be strings or VQA-style {"answer": ...} records
        return [
            _with_gold(q, {**q.gold, "answers": [a["answer"] if isinstance(a, dict) else a for a in q.gold["answers"]]})
            if q.gold
            else q
            for q in questions
        ]
    key, gold = _vqa_annotations(annotations)
    joined = []
    for question, row in zip(questions, rows, strict=True):
        lookup = str(row["question_id"]) if key == "question_id" else Path(row.get("image", "")).name
        entry = gold.get(lookup)
        joined.append(_with_gold(question, None if entry is None else {**entry, **_category_only(row)}))
    return joined


def load_gqa(questions_path: Path, images_dir: Path, annotations: Path | None) -> list[Question]:
    questions, _ = _jsonl_questions(questions_path, images_dir, gold_keys=("answer",))
    if annotations is None:
        return questions
    gold = read_json(annotations)
    return [
        _with_gold(q, {"answer": gold[q.question_id]["answer"]} if q.question_id in gold else None) for q in questions
    ]


def load_answer_jsonl(questions_path: Path, images_dir: Path, annotations: Path | None) -> list[Question]:
    """Question JSONL whose gold answer is inline (`answer`), e.g. Shapes-VQA or MME converted to JSONL."""
    if annotations is not None:
        raise ValueError(f"this benchmark reads its answers from the question file; drop --annotations {annotations}")
    return _jsonl_questions(questions_path, images_dir, gold_keys=("answer",))[0]


def _vqav2_submission(questions: list[Question], answers: dict[str, str]) -> list[dict]:
    return [
        {"question_id": int(q.question_id) if q.question_id.isdigit() else q.question_id,
         "answer": normalize_vqa_answer(answers.get(q.question_id, ""))}
        for q in questions
    ]  # fmt: skip


def _vizwiz_submission(questions: list[Question], answers: dict[str, str]) -> list[dict]:
    rows = []
    for question in questions:
        answer = normalize_vqa_answer(answers.get(question.question_id, ""))
        image = question.images[0].name if question.images and isinstance(question.images[0], Path) else ""
        rows.append({"image": image, "answer": answer})
    return rows


# --- yes/no --------------------------------------------------------------------------------------------------


def load_pope(questions_path: Path, images_dir: Path, annotations: Path | None) -> list[Question]:
    questions, rows = _jsonl_questions(questions_path, images_dir, gold_keys=("label",))
    if annotations is None:
        if any(q.gold is None and "answer" in row for q, row in zip(questions, rows, strict=True)):
            return [
                _with_gold(q, {"label": row["answer"], **_category_only(row)}) if q.gold is None else q
                for q, row in zip(questions, rows, strict=True)
            ]
        return questions
    by_split: dict[str, list[int]] = defaultdict(list)
    for index, row in enumerate(rows):
        by_split[row.get("category", "")].append(index)
    joined: list[Question] = list(questions)
    for split, indices in by_split.items():
        label_file = Path(annotations) / f"coco_pope_{split}.json"
        if not label_file.exists():
            raise ValueError(f"POPE split {split!r} has no label file {label_file}")
        labels = read_jsonl(label_file)
        if len(labels) != len(indices):
            raise ValueError(
                f"{label_file} has {len(labels)} labels but the questions have {len(indices)} {split!r} ones"
            )
        for index, label in zip(indices, labels, strict=True):
            label_text = label.get("text", "").strip()
            if label_text and not questions[index].text.startswith(label_text):
                raise ValueError(
                    f"{label_file}: label for {label_text!r} is aligned with question "
                    f"{questions[index].question_id!r} ({questions[index].text!r}); the files are not in the same order"
                )
            joined[index] = _with_gold(questions[index], {"label": label["label"], "category": split})
    return joined


def _tsv_image(row: dict[str, str], rows_by_index: dict[str, dict[str, str]], where: str) -> EncodedImage:
    """The base64 image of a TSV row; a short all-digit value refers to the image of the row with that index."""
    data = row.get("image", "")
    if data.isdigit() and data in rows_by_index and len(data) < 64:
        data = rows_by_index[data]["image"]
    if not data:
        raise ValueError(f"{where} has no image")
    return EncodedImage(data=data, name=where)


def _mme_folder_answers(folder: Path) -> dict[tuple[str, str], list[tuple[str, str]]]:
    """(subtask, image stem) -> [(question, answer)] from MME's release folder (`<subtask>/**/<image stem>.txt`)."""
    gold: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    for text_file in sorted(Path(folder).glob("*/**/*.txt")):
        subtask = text_file.relative_to(folder).parts[0]
        for line in text_file.read_text(encoding="utf-8").splitlines():
            if "\t" in line:
                question, answer = line.rsplit("\t", 1)
                gold[(subtask, text_file.stem)].append((question.strip(), answer.strip()))
    return gold


def _mme_jsonl(questions_path: Path, images_dir: Path, annotations: Path | None) -> list[Question]:
    """LLaVA's MME JSONL: both questions of an image share a question_id, so ids get "#1" / "#2" appended."""
    rows = read_jsonl(questions_path)
    folder_gold = _mme_folder_answers(annotations) if annotations is not None else {}
    seen: dict[str, int] = defaultdict(int)
    questions = []
    for number, row in enumerate(rows, start=1):
        _require(row, ("question_id", "text", "image"), f"{questions_path} line {number}")
        base_id = str(row["question_id"])
        seen[base_id] += 1
        text = _clean_text(row["text"])
        category = row.get("category") or base_id.split("/")[0]
        answer = row.get("answer")
        if answer is None:
            candidates = folder_gold.get((category, Path(row["image"]).stem), [])
            answer = next((a for q, a in candidates if text.startswith(q) or q.startswith(text)), None)
        gold = None if answer is None else {"answer": answer, "category": category, "image": row["image"]}
        questions.append(Question(f"{base_id}#{seen[base_id]}", text, (images_dir / row["image"],), gold))
    return questions


def load_mme(questions_path: Path, images_dir: Path, annotations: Path | None) -> list[Question]:
    if questions_path.suffix.lower() != ".tsv":
        return _mme_jsonl(questions_path, images_dir, annotations)
    rows = read_tsv(questions_path)
    rows_by_index = {row["index"]: row for row in rows}
    questions = []
    for number, row in enumerate(rows, start=2):
        where = f"{questions_path} line {number}"
        _require(row, ("index", "question", "category", "image"), where)
        image_key = row.get("image_path") or (row["image"] if len(row["image"]) < 64 else row["index"])
        gold = {"answer": row["answer"], "category": row["category"], "image": image_key} if row.get("answer") else None
        image = _tsv_image(row, rows_by_index, where)
        questions.append(Question(row["index"], _clean_text(row["question"]), (image,), gold))
    return _check_unique(questions, questions_path)


# --- multiple choice -----------------------------------------------------------------------------------------


def _options_text(options: Sequence[str], style: str) -> str:
    if style == "dot":
        return "\n".join(f"{letter}. {option}" for letter, option in zip(OPTION_LETTERS, options, strict=False))
    return "\n".join(f"({letter}) {option}" for letter, option in zip(OPTION_LETTERS, options, strict=False))


def load_mmbench(questions_path: Path, images_dir: Path, annotations: Path | None) -> list[Question]:
    rows = read_tsv(questions_path)
    rows_by_index = {row["index"]: row for row in rows}
    questions = []
    for number, row in enumerate(rows, start=2):
        where = f"{questions_path} line {number}"
        _require(row, ("index", "question", "A", "B", "image"), where)
        options = [row[letter] for letter in OPTION_LETTERS[:8] if row.get(letter, "").strip() not in ("", "nan")]
        image = _tsv_image(row, rows_by_index, where)
        hint = row.get("hint", "").strip()
        answer = row.get("answer", "").strip() or None
        for shift in range(len(options)):
            rotated, gold_letter = rotate_options(options, answer, shift)
            stem = f"{hint}\n{row['question']}" if hint and hint != "nan" else row["question"]
            gold = None
            if gold_letter is not None:
                gold = {"answer": gold_letter, "options": rotated, "index": row["index"], "round": shift,
                        "category": row.get("category", "")}  # fmt: skip
            text = f"{_clean_text(stem)}\n{_options_text(rotated, 'dot')}"
            questions.append(Question(f"{row['index']}/r{shift}", text, (image,), gold))
    return _check_unique(questions, questions_path)


def load_scienceqa(questions_path: Path, images_dir: Path, annotations: Path | None) -> list[Question]:
    if questions_path.suffix.lower() == ".jsonl":
        return _jsonl_questions(questions_path, images_dir, gold_keys=("answer", "options"))[0]
    records = read_json(questions_path)
    problems = read_json(annotations) if annotations is not None else {}
    questions = []
    skipped = 0
    for record in records:
        if not record.get("image"):
            skipped += 1
            continue
        question_id = str(record["id"])
        problem = problems.get(question_id)
        gold = None
        if problem is not None:
            gold = {"answer": OPTION_LETTERS[problem["answer"]], "options": list(problem["choices"]),
                    "category": problem.get("subject")}  # fmt: skip
        text = _clean_text(record["conversations"][0]["value"])
        questions.append(Question(question_id, text, (images_dir / record["image"],), gold))
    if skipped:
        logger.info("ScienceQA-IMG: left out %d questions without an image", skipped)
    return _check_unique(questions, questions_path)


def load_mmmu(questions_path: Path, images_dir: Path, annotations: Path | None) -> list[Question]:
    questions, rows = _jsonl_questions(questions_path, images_dir, gold_keys=("answer",))
    built = []
    for question, row in zip(questions, rows, strict=True):
        kind = row.get("question_type", "multiple-choice")
        options = row.get("options") or []
        text = question.text
        if kind == "multiple-choice":
            if not options:
                raise ValueError(f"{questions_path}: multiple-choice question {question.question_id!r} has no options")
            text = f"{text}\n{_options_text(options, 'paren')}"
        gold = {**question.gold, "question_type": kind, "options": options} if question.gold else None
        instruction = OPTION_LETTER_PROMPT if kind == "multiple-choice" else SHORT_ANSWER_PROMPT
        built.append(Question(question.question_id, text, question.images, gold, instruction))
    return built


# --- judged ----------------------------------------------------------------------------------------------------


def load_llava_bench(questions_path: Path, images_dir: Path, annotations: Path | None) -> list[Question]:
    folder = Path(annotations) if annotations is not None else questions_path.parent
    questions, rows = _jsonl_questions(questions_path, images_dir)
    contexts = {row["image"]: row["caption"] for row in read_jsonl(folder / "context.jsonl")}
    references = {str(row["question_id"]): row["text"] for row in read_jsonl(folder / "answers_gpt4.jsonl")}
    built = []
    for question, row in zip(questions, rows, strict=True):
        gold = None
        if question.question_id in references and row.get("image") in contexts:
            gold = {"category": row.get("category", "all"), "question": question.text,
                    "reference": references[question.question_id], "context": contexts[row["image"]]}  # fmt: skip
        built.append(_with_gold(question, gold))
    return built


def load_mmvet(questions_path: Path, images_dir: Path, annotations: Path | None) -> list[Question]:
    data = read_json(questions_path)
    questions = []
    for question_id, item in data.items():
        _require(item, ("imagename", "question", "answer", "capability"), f"{questions_path} entry {question_id}")
        gold = {"question": item["question"], "answer": item["answer"], "capabilities": list(item["capability"])}
        questions.append(Question(question_id, _clean_text(item["question"]), (images_dir / item["imagename"],), gold))
    return questions


BENCHMARKS: dict[str, Benchmark] = {
    benchmark.name: benchmark
    for benchmark in (
        Benchmark("vqav2", "VQAv2", load_vqa, score_vqa, "accuracy", SHORT_ANSWER_PROMPT,
                  table_metrics=("accuracy/yes/no", "accuracy/number", "accuracy/other"),
                  submission=_vqav2_submission),
        Benchmark("textvqa", "TextVQA", load_vqa, score_vqa, "accuracy", SHORT_ANSWER_PROMPT),
        Benchmark("vizwiz", "VizWiz", load_vqa, score_vqa, "accuracy",
                  f"{UNANSWERABLE_PROMPT}\n{SHORT_ANSWER_PROMPT}", table_metrics=("accuracy/unanswerable",),
                  submission=_vizwiz_submission,
                  lenient_score=lambda s: score_vqa(s, empty_answer="unanswerable")),
        Benchmark("gqa", "GQA", load_gqa, score_gqa, "accuracy", SHORT_ANSWER_PROMPT,
                  lenient_score=lambda s: score_gqa(s, lenient=True)),
        Benchmark("scienceqa_img", "ScienceQA-IMG", load_scienceqa, score_multiple_choice, "accuracy",
                  OPTION_LETTER_PROMPT, table_metrics=("unparsed",),
                  lenient_score=lambda s: score_multiple_choice(s, lenient=True)),
        Benchmark("pope", "POPE", load_pope, score_pope, "f1", SHORT_ANSWER_PROMPT,
                  table_metrics=("accuracy", "random/f1", "popular/f1", "adversarial/f1")),
        Benchmark("mme", "MME", load_mme, score_mme, "perception", SHORT_ANSWER_PROMPT,
                  table_metrics=("cognition",)),
        Benchmark("mmbench", "MMBench", load_mmbench, score_mmbench, "circular_accuracy", OPTION_LETTER_PROMPT,
                  table_metrics=("single_pass_accuracy",)),
        Benchmark("mmmu", "MMMU", load_mmmu, score_mmmu, "accuracy", OPTION_LETTER_PROMPT, max_new_tokens=32),
        Benchmark("llava_bench", "LLaVA-Bench (in-the-wild)", load_llava_bench, score_llava_bench, "relative_score",
                  max_new_tokens=1024, table_metrics=("relative_score/conv", "relative_score/detail",
                                                      "relative_score/complex"), judge_task="llava_bench"),
        Benchmark("mmvet", "MM-Vet", load_mmvet, score_mmvet, "total", max_new_tokens=1024, judge_task="mmvet"),
        Benchmark("shapes_vqa", "Shapes-VQA", load_answer_jsonl, score_exact_match, "accuracy",
                  table_metrics=tuple(f"accuracy/{family}" for family in
                                      ("background", "color", "exists", "count", "position"))),
    )
}  # fmt: skip


def get_benchmark(name: str) -> Benchmark:
    """The benchmark called `name`; an unknown name raises a ValueError listing the known ones."""
    if name not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}; choose one of {sorted(BENCHMARKS)}")
    return BENCHMARKS[name]


__all__ = [
    "BENCHMARKS",
    "Benchmark",
    "EncodedImage",
    "Question",
    "get_benchmark",
    "open_image",
    "read_jsonl",
]
