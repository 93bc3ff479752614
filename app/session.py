"""The model behind the app: loading it on the best device there is, and answering with the answer streamed."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from threading import Thread

import torch
from PIL import Image
from transformers import (
    AutoModelForImageTextToText,
    AutoProcessor,
    BatchFeature,
    PreTrainedModel,
    ProcessorMixin,
    TextIteratorStreamer,
)

__all__ = ["AnswerUpdate", "AppSession", "default_device"]

logger = logging.getLogger(__name__)


def default_device() -> str:
    """"cuda" when a CUDA GPU is there, else "cpu"."""
    return "cuda" if torch.cuda.is_available() else "cpu"


@dataclass(frozen=True)
class AnswerUpdate:
    """The answer so far. On the last update (`done`), `latency_s` is the wall time of the whole `generate` call
    (image encoding, prefill and every decode step), `input_tokens` the prompt's length (image run included) and
    `new_tokens` the number of tokens generated."""

    text: str
    done: bool = False
    latency_s: float | None = None
    input_tokens: int | None = None
    new_tokens: int | None = None


class AppSession:
    """One loaded model and its processor, on `device`; `name` is what the page calls the model."""

    def __init__(
        self, model: PreTrainedModel, processor: ProcessorMixin, device: str, name: str, max_new_tokens: int = 128
    ) -> None:
        self.model, self.processor, self.device, self.name = model, processor, device, name
        self.max_new_tokens = max_new_tokens

    @classmethod
    def load(
        cls, model_dir: str | Path, device: str | None = None, dtype: str = "auto", max_new_tokens: int = 128
    ) -> AppSession:
        """Loads an MQT-LLaVA folder or Hub id (with its own remote code) on `device` (default: `default_device()`)."""
        device = device or default_device()
        processor = AutoProcessor.from_pretrained(str(model_dir), trust_remote_code=True)
        model = AutoModelForImageTextToText.from_pretrained(str(model_dir), trust_remote_code=True, dtype=dtype)
        model = model.to(device).eval()
        logger.info("loaded %s on %s (M = %d)", model_dir, device, model.config.num_queries)
        return cls(model, processor, device, Path(str(model_dir)).name, max_new_tokens)

    @property
    def num_queries(self) -> int:
        """M: the largest token budget of the loaded model."""
        return self.model.config.num_queries

    @property
    def num_heads(self) -> int:
        """Attention heads of the query transformer."""
        return self.model.config.query_num_heads

    def prompt(self, image: Image.Image, question: str, num_visual_tokens: int) -> BatchFeature:
        """The chat-template inputs for one image and one question with an image run of m = `num_visual_tokens`,
        on the session's device: `input_ids` and `attention_mask` (1, L), `pixel_values` (1, 3, H, W)."""
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
        inputs = self.processor.apply_chat_template(
            messages,
            add_generation_prompt=True,
            tokenize=True,
            return_dict=True,
            return_tensors="pt",
            processor_kwargs={"images": [image], "num_visual_tokens": num_visual_tokens},
        )
        return inputs.to(self.device)

    def stream_answer(
        self, image: Image.Image, question: str, num_visual_tokens: int, max_new_tokens: int | None = None
    ) -> Iterator[AnswerUpdate]:
        """Greedy answer at m = `num_visual_tokens`, one update per decoded piece of text, the last one `done`;
        at most `max_new_tokens` tokens (default: the session's)."""
        inputs = self.prompt(image, question, num_visual_tokens)
        inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
        streamer = TextIteratorStreamer(self.processor.tokenizer, skip_prompt=True, skip_special_tokens=True)
        outcome: dict[str, object] = {}
        started = time.perf_counter()

        def generate() -> None:
            try:
                with torch.inference_mode():
                    outcome["sequences"] = self.model.generate(
                        **inputs, num_visual_tokens=num_visual_tokens, max_new_tokens=max_new_tokens or self.max_new_tokens,
                        do_sample=False, streamer=streamer,
                    )  # fmt: skip
            except BaseException as error:  # re-raised in the caller's thread below
                outcome["error"] = error
                streamer.end()
            finally:
                outcome["seconds"] = time.perf_counter() - started

        worker = Thread(target=generate, daemon=True)
        worker.start()
        text = ""
        for piece in streamer:
            text += piece
            if piece:
                yield AnswerUpdate(text)
        worker.join()
        if "error" in outcome:
            raise outcome["error"]
        input_tokens = inputs["input_ids"].shape[1]
        new_tokens = outcome["sequences"].shape[1] - input_tokens
        yield AnswerUpdate(text.strip(), True, outcome["seconds"], input_tokens, new_tokens)

    def warm_up(self, image: Image.Image) -> None:
        """Answers once with two tokens, so that one-time initialisation is not timed in the first real answer."""
        for _ in self.stream_answer(image, "What is in the image?", 1, max_new_tokens=2):
            pass
