"""Language-model judges for the benchmarks graded by a model (LLaVA-Bench in-the-wild, MM-Vet).

`Judge` is the interface: a chat completion from a list of messages. Two judges are provided: an OpenAI-compatible
chat-completions endpoint (OpenAI itself, or any local server speaking that protocol) and a local transformers chat
model. Published numbers used GPT-4 (LLaVA-Bench: gpt-4-0314, MM-Vet: gpt-4-0613); another judge gives other numbers.

Scores are comparable with published ones only when the judge reads the benchmarks' official grading texts word
for word. Those texts belong to the benchmarks' authors, so this package does not ship them: the user supplies a
copy in a JSON file (`--judge-prompts`, read by `load_judge_prompts`). The official sources are LLaVA's
`llava/eval/table/rule.json` (the `llava_bench_*` rules) and `llava/eval/eval_gpt_review_bench.py` (the system
message), and MM-Vet's `mm-vet_evaluator.py` (the few-shot prompt and the retry instruction). Only the prose comes
from that file; the layout of each request, the question's table row appended to MM-Vet's few-shot table and
MM-Vet's retry loop are built here.

Judge replies are cached in a JSONL file next to the answers, so an interrupted grading run resumes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from .scorers import parse_mmvet_grade

logger = logging.getLogger(__name__)

Messages = list[dict[str, str]]

PROMPT_KEYS: dict[str, tuple[str, ...]] = {
    "llava_bench": ("llava_bench_system", "llava_bench_rule"),
    "mmvet": ("mmvet_prompt", "mmvet_retry_suffix"),
}
PROMPT_SOURCES = {
    "llava_bench": "the LLaVA repository: `llava_bench_rule` from llava/eval/table/rule.json (the \"prompt\" of its "
    "llava_bench_* entries; that file itself is accepted too) and `llava_bench_system` from the system message in "
    "llava/eval/eval_gpt_review_bench.py",
    "mmvet": "the MM-Vet repository's mm-vet_evaluator.py: `mmvet_prompt` is its few-shot grading prompt (up to and "
    "including the line break after its last example row) and `mmvet_retry_suffix` the text it appends when it "
    "asks again",
}
LLAVA_BENCH_CATEGORIES = ("conv", "detail", "complex")
MMVET_MAX_TRIES = 5



@dataclass(frozen=True)
class JudgePrompts:
    """The prose of one benchmark's grading requests, read from the user's `--judge-prompts` file.

    `texts` maps the keys of `PROMPT_KEYS[task]` to their texts; a LLaVA `rule.json` gives one rule per category,
    kept under `llava_bench_rule/<category>`.
    """

    task: str
    source: Path
    texts: dict[str, str]

    def llava_bench_rule(self, category: str) -> str:
        """The review rule for a LLaVA-Bench question of `category` (conv, detail, complex)."""
        if "llava_bench_rule" in self.texts:
            return self.texts["llava_bench_rule"]
        key = f"llava_bench_rule/{category}"
        if key not in self.texts:
            raise ValueError(
                f"the judge prompts file {self.source} has no rule for the LLaVA-Bench category {category!r} "
                f"(expected a 'llava_bench_{category}' entry or a 'llava_bench_rule' key)"
            )
        return self.texts[key]

    @property
    def digest(self) -> str:
        """A short hash of the texts: cached verdicts given with other prompts are not reused."""
        return hashlib.sha256(json.dumps(self.texts, sort_keys=True).encode()).hexdigest()[:12]


def _rule_json_rules(data: dict) -> dict[str, str]:
    """The per-category rules of a LLaVA `rule.json` ({"llava_bench_conv": {"prompt": ...}, ...}), if present."""
    rules = {}
    for category in LLAVA_BENCH_CATEGORIES:
        entry = data.get(f"llava_bench_{category}")
        if isinstance(entry, dict) and isinstance(entry.get("prompt"), str):
            rules[f"llava_bench_rule/{category}"] = entry["prompt"]
    return rules


def load_judge_prompts(path: str | Path, task: str) -> JudgePrompts:
    """Reads the grading texts of `task` ("llava_bench" or "mmvet") from a JSON object of strings.

    Only the keys of `PROMPT_KEYS[task]` are read. For llava_bench, LLaVA's own `rule.json` can stand in for
    `llava_bench_rule` (its `llava_bench_conv` / `_detail` / `_complex` entries, each with a "prompt"); the file
    still needs a `llava_bench_system` key. A missing file raises FileNotFoundError, a missing or non-string key a
    ValueError naming the key and the file.
    """
    if task not in PROMPT_KEYS:
        raise ValueError(f"no judge task {task!r}; expected one of {sorted(PROMPT_KEYS)}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--judge-prompts {path} does not exist")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"--judge-prompts {path} is not valid JSON: {error}") from error
    if not isinstance(data, dict):
        raise TypeError(f"--judge-prompts {path} must hold a JSON object, got {type(data).__name__}")
    texts: dict[str, str] = {}
    for key in PROMPT_KEYS[task]:
        if key == "llava_bench_rule" and key not in data:
            rules = _rule_json_rules(data)
            if len(rules) == len(LLAVA_BENCH_CATEGORIES):
                texts.update(rules)
                continue
        if key not in data:
            raise ValueError(f"the judge prompts file {path} has no key {key!r} (needed to grade {task}; copy it "
                             f"from {PROMPT_SOURCES[task]})")  # fmt: skip
        if not isinstance(data[key], str) or not data[key].strip():
            raise ValueError(f"the judge prompts file {path}: {key!r} must be a non-empty string")
        texts[key] = data[key]
    return JudgePrompts(task, path, texts)


class Judge(ABC):
    """A chat model that grades answers: `complete(messages)` returns its reply text."""

    name: str

    @abstractmethod
    def complete(self, messages: Messages, max_tokens: int, temperature: float) -> str:
        """The judge's reply to `messages` ([{"role": "system"|"user", "content": str}, ...])."""


class OpenAICompatibleJudge(Judge):
    """A model behind an OpenAI-compatible `/chat/completions` endpoint; the API key is read from `api_key_env`."""

    def __init__(self, model: str, api_base: str = "https://api.openai.com/v1", api_key_env: str = "OPENAI_API_KEY",
                 timeout: float = 120.0) -> None:  # fmt: skip
        self.name = model
        self.url = api_base.rstrip("/") + "/chat/completions"
        self.api_key = os.environ.get(api_key_env)
        self.timeout = timeout
        if not self.api_key and "api.openai.com" in self.url:
            raise ValueError(
                f"the judge {model!r} on {api_base} needs an API key in the environment variable {api_key_env}"
            )

    def complete(self, messages: Messages, max_tokens: int, temperature: float) -> str:
        body = json.dumps(
            {"model": self.name, "messages": messages, "max_tokens": max_tokens, "temperature": temperature}
        )
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(self.url, data=body.encode(), headers=headers, method="POST")
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            payload = json.loads(response.read())
        try:
            return payload["choices"][0]["message"]["content"] or ""
        except (KeyError, IndexError, TypeError) as error:
            raise ValueError(
                f"the judge endpoint {self.url} answered without choices[0].message.content: {payload}"
            ) from error


class TransformersJudge(Judge):
    """A local chat model (a folder with a causal LM and a tokenizer that has a chat template)."""

    def __init__(self, model_dir: str | Path, device: str | None = None) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.name = str(model_dir)
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        if self.tokenizer.chat_template is None:
            raise ValueError(f"the judge model {model_dir} has no chat template; a judge must be a chat model")
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
        self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).to(device).eval()

    def complete(self, messages: Messages, max_tokens: int, temperature: float) -> str:
        inputs = self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
        ).to(self.model.device)
        sampling = {"do_sample": True, "temperature": temperature} if temperature > 0 else {"do_sample": False}
        output = self.model.generate(**inputs, max_new_tokens=max_tokens, **sampling)
        return self.tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)


def build_judge(model: str | None, api_base: str | None = None, api_key_env: str = "OPENAI_API_KEY") -> Judge | None:
    """The judge named on the command line: a local folder gives a `TransformersJudge`, any other name a model
    behind an OpenAI-compatible endpoint; None when no judge is configured."""
    if not model:
        return None
    if Path(model).is_dir():
        return TransformersJudge(model)
    return OpenAICompatibleJudge(model, api_base or "https://api.openai.com/v1", api_key_env)


def llava_bench_messages(
    prompts: JudgePrompts, context: str, question: str, reference: str, answer: str, category: str
) -> Messages:
    """The LLaVA-Bench review request: the reference answer is Assistant 1, the model's answer Assistant 2, then
    the category's rule under [System]."""
    content = (
        f"[Context]\n{context}\n\n[Question]\n{question}\n\n"
        f"[Assistant 1]\n{reference}\n\n[End of Assistant 1]\n\n"
        f"[Assistant 2]\n{answer}\n\n[End of Assistant 2]\n\n"
        f"[System]\n{prompts.llava_bench_rule(category)}\n\n"
    )
    return [
        {"role": "system", "content": prompts.texts["llava_bench_system"]},
        {"role": "user", "content": content},
    ]


def mmvet_messages(
    prompts: JudgePrompts, question: str, ground_truth: str, prediction: str, retry: bool = False
) -> Messages:
    """The MM-Vet grading request: the few-shot table followed by the question's row, its score left open; a retry
    adds the retry suffix."""
    truth = ground_truth.replace("<AND>", " <AND> ").replace("<OR>", " <OR> ")
    content = f"{prompts.texts['mmvet_prompt']}\n{question} | {truth} | {prediction} | "
    if retry:
        content += prompts.texts["mmvet_retry_suffix"]
    return [{"role": "user", "content": content}]


def _read_cache(path: Path) -> dict[str, dict]:
    cached: dict[str, dict] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by an interrupted run: graded again
            cached[row["question_id"]] = row
    return cached


def _grade_mmvet(judge: Judge, prompts: JudgePrompts, sample: dict) -> dict:
    """MM-Vet's grading loop: up to five tries, the later ones with the retry suffix and a rising temperature."""
    replies = []
    temperature = 0.0
    for attempt in range(MMVET_MAX_TRIES):
        messages = mmvet_messages(prompts, sample["question"], sample["answer"], sample["prediction"], attempt > 0)
        reply = judge.complete(messages, max_tokens=3, temperature=temperature)
        replies.append(reply)
        grade = parse_mmvet_grade(reply)
        if grade is not None:
            return {"grade": grade, "replies": replies}
        temperature += 0.5
    return {"grade": None, "replies": replies}


def judge_samples(
    task: str, samples: Iterable[dict], judge: Judge, cache_path: Path, prompts: JudgePrompts
) -> list[dict]:
    """Adds the judge's verdict to each sample ("review" for llava_bench, "grade" for mmvet), caching replies.

    A cached verdict is reused only when it was given by the same judge, with the same prompts, for the same
    prediction.
    """
    if task not in PROMPT_KEYS:
        raise ValueError(f"no judge task {task!r}; expected one of {sorted(PROMPT_KEYS)}")
    if prompts.task != task:
        raise ValueError(f"the judge prompts from {prompts.source} were loaded for {prompts.task}, not {task}")
    samples = list(samples)
    cached = _read_cache(cache_path)
    graded = []
    with open(cache_path, "a", encoding="utf-8") as cache:
        for sample in tqdm(samples, desc=f"judging with {judge.name}", unit="answer"):
            hit = cached.get(sample["question_id"])
            stale = hit is None or (hit.get("judge"), hit.get("prompts"), hit.get("prediction")) != (
                judge.name, prompts.digest, sample["prediction"]
            )
            if stale:
                if task == "llava_bench":
                    messages = llava_bench_messages(prompts, sample["context"], sample["question"],
                                                    sample["reference"], sample["prediction"], sample["category"])  # fmt: skip
                    verdict = {"review": judge.complete(messages, max_tokens=1024, temperature=0.2)}
                else:
                    verdict = _grade_mmvet(judge, prompts, sample)
                hit = {"question_id": sample["question_id"], "judge": judge.name, "prompts": prompts.digest,
                       "prediction": sample["prediction"], **verdict}  # fmt: skip
                cache.write(json.dumps(hit) + "\n")
                cache.flush()
            graded.append({**sample, **{key: hit[key] for key in ("review", "grade") if key in hit}})
    return graded


__all__ = [
    "PROMPT_KEYS",
    "PROMPT_SOURCES",
    "Judge",
    "JudgePrompts",
    "OpenAICompatibleJudge",
    "TransformersJudge",
    "build_judge",
    "judge_samples",
    "llava_bench_messages",
    "load_judge_prompts",
    "mmvet_messages",
]
