"""Sweeps the token budget m on Shapes-VQA through `pipeline("image-text-to-text")`, and counts FLOPs per m."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image
from tqdm.auto import tqdm
from transformers import Pipeline, pipeline

from mqt_llava.evaluation.cost.flop_counting import count_parts
from mqt_llava.evaluation.shapes_vqa import ALL_FAMILIES, SceneRecord

from .report import average

logger = logging.getLogger(__name__)


def load_pipeline(model_dir: str | Path) -> Pipeline:
    """The folder's model and processor through `pipeline("image-text-to-text", trust_remote_code=True)` on CPU."""
    pipe = pipeline("image-text-to-text", model=str(model_dir), trust_remote_code=True, device="cpu", dtype=torch.float32)
    pipe.model.eval()
    # Batched generation needs prompts padded on the left. `generate` re-pads on the left itself when it rewrites the
    # image runs (m differs from the processor's default), but at the default m the pipeline's own padding is kept.
    pipe.tokenizer.padding_side = "left"
    return pipe


def normalise_answer(text: str) -> str:
    """First word of a reply, lower-cased, without surrounding punctuation ("" for an empty reply)."""
    words = text.strip().lower().split()
    return words[0].strip(".,!?:;") if words else ""


def _messages(image: Image.Image, question: str) -> list[dict]:
    return [{"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": question}]}]


def answer_questions(
    pipe: Pipeline,
    records: Sequence[SceneRecord],
    num_visual_tokens: int,
    batch_size: int = 32,
    desc: str | None = None,
) -> list[tuple[str, str, str]]:
    """Answers every question of `records` at m = `num_visual_tokens`.

    Returns one (family, gold answer, predicted answer) per question, in record order.
    """
    items = [(record.image(), question) for record in records for question in record.questions]
    results = []
    bar = tqdm(total=len(items), desc=desc or f"m={num_visual_tokens}", unit="q", leave=False)
    for start in range(0, len(items), batch_size):
        batch = items[start : start + batch_size]
        outputs = pipe(
            text=[_messages(image, question.text) for image, question in batch],
            batch_size=len(batch),
            return_full_text=False,
            generate_kwargs={"num_visual_tokens": num_visual_tokens, "max_new_tokens": 3, "do_sample": False},
        )
        for (_, question), output in zip(batch, outputs, strict=True):
            results.append((question.family, question.answer, normalise_answer(output[0]["generated_text"])))
        bar.update(len(batch))
    bar.close()
    return results


def accuracy_by_family(answers: Sequence[tuple[str, str, str]]) -> dict[str, float]:
    """Fraction right per family present (standard families first, then spatial ones), plus "average" (families
    weigh the same)."""
    hits, totals = defaultdict(int), defaultdict(int)
    for family, gold, predicted in answers:
        totals[family] += 1
        hits[family] += int(gold == predicted)
    families = [family for family in ALL_FAMILIES if totals[family]]
    accuracy = {family: hits[family] / totals[family] for family in families}
    accuracy["average"] = average(accuracy, families)
    return accuracy


def sweep(
    pipe: Pipeline, records: Sequence[SceneRecord], m_values: Sequence[int], batch_size: int = 32
) -> dict[str, dict[str, float]]:
    """Accuracy per family at every m: {"m": {family: fraction, "average": ...}}."""
    return {
        str(m): accuracy_by_family(answer_questions(pipe, records, m, batch_size, desc=f"Shapes-VQA at m={m}"))
        for m in tqdm(m_values, desc="token budgets", unit="m")
    }


def count_flops(pipe: Pipeline, record: SceneRecord, m_values: Sequence[int]) -> dict[str, int]:
    """Forward FLOPs of one question prompt at each m: vision tower + query transformer + language-model prefill
    (counted part by part by `evaluation.cost.flop_counting.count_parts`)."""
    processor, model = pipe.processor, pipe.model
    inputs = processor.apply_chat_template(
        _messages(record.image(), record.questions[0].text),
        add_generation_prompt=True,
        tokenize=True,
        return_dict=True,
        processor_kwargs={"num_visual_tokens": 1},
    )
    prompt_tokens = len(inputs["input_ids"][0]) - 1
    image_size = model.config.vision_config.image_size
    flops = {}
    for m in m_values:
        parts = count_parts(model, image_size=image_size, prompt_tokens=prompt_tokens, num_visual_tokens=m,
                            image_kwargs={"num_visual_tokens": m})  # fmt: skip
        flops[str(m)] = parts.total
    return flops


__all__ = ["accuracy_by_family", "answer_questions", "count_flops", "load_pipeline", "normalise_answer", "sweep"]
