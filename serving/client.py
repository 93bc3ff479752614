"""A small OpenAI-compatible client for MQT-LLaVA servers: chat requests with a per-request token budget, and a
bounded load generator that measures each request's time to first token.

Images travel as PNG data URLs; the budget travels as `mm_processor_kwargs` (the server must be started with
`--trust-request-mm-kwargs`, else vLLM refuses the field with HTTP 400).
"""

from __future__ import annotations

import base64
import io
import json
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from PIL import Image


class ServerError(RuntimeError):
    """An HTTP error answer: `status` and the server's message."""

    def __init__(self, status: int, message: str):
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message


def image_data_url(image: Image.Image) -> str:
    """A PNG data URL of `image`."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def chat_body(
    model: str,
    images: list[Image.Image],
    question: str,
    num_visual_tokens: int | None,
    max_tokens: int,
    stream: bool = False,
) -> dict:
    """An OpenAI chat-completions request: one user turn with `images` then `question`, greedy decoding, and the
    budget in `mm_processor_kwargs` (left out when `num_visual_tokens` is None: the folder's default applies)."""
    content = [{"type": "image_url", "image_url": {"url": image_data_url(image)}} for image in images]
    content.append({"type": "text", "text": question})
    body = {
        "model": model,
        "messages": [{"role": "user", "content": content}],
        "max_tokens": max_tokens,
        "temperature": 0.0,
    }
    if num_visual_tokens is not None:
        body["mm_processor_kwargs"] = {"num_visual_tokens": num_visual_tokens}
    if stream:
        body.update(stream=True, stream_options={"include_usage": True})
    return body


def _open(url: str, body: dict, timeout: float):
    request = urllib.request.Request(
        f"{url}/v1/chat/completions", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        return urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        raw = error.read().decode(errors="replace")
        try:
            message = json.loads(raw).get("error", {}).get("message", raw)
        except (json.JSONDecodeError, AttributeError):
            message = raw
        raise ServerError(error.code, message) from None


def chat(url: str, body: dict, timeout: float = 120) -> dict:
    """Sends one non-streaming request and returns the server's JSON answer; an error answer raises `ServerError`."""
    with _open(url, {**body, "stream": False}, timeout) as response:
        return json.loads(response.read())


@dataclass
class RequestTiming:
    """One streamed request: seconds to the first generated text and to the end, and the server's token usage."""

    first_token_s: float
    latency_s: float
    prompt_tokens: int
    completion_tokens: int
    text: str


def stream_chat(url: str, body: dict, timeout: float = 300) -> RequestTiming:
    """Sends one streaming request and times it on this machine's monotonic clock."""
    start = time.perf_counter()
    first = None
    pieces, usage = [], {}
    with _open(url, {**body, "stream": True, "stream_options": {"include_usage": True}}, timeout) as response:
        for raw_line in response:
            line = raw_line.decode().strip()
            if not line.startswith("data:") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[len("data:") :])
            for choice in chunk.get("choices") or []:
                delta = choice.get("delta", {}).get("content")
                if delta:
                    first = first if first is not None else time.perf_counter() - start
                    pieces.append(delta)
            usage = chunk.get("usage") or usage
    latency = time.perf_counter() - start
    return RequestTiming(
        first_token_s=latency if first is None else first,
        latency_s=latency,
        prompt_tokens=int(usage.get("prompt_tokens", 0)),
        completion_tokens=int(usage.get("completion_tokens", 0)),
        text="".join(pieces),
    )


def run_load(url: str, bodies: list[dict], concurrency: int, timeout: float = 600) -> tuple[list[RequestTiming], float]:
    """Sends every body, at most `concurrency` in flight at once; returns the timings (in order) and wall seconds."""
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}")
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        timings = list(pool.map(lambda body: stream_chat(url, body, timeout), bodies))
    return timings, time.perf_counter() - start


__all__ = ["RequestTiming", "ServerError", "chat", "chat_body", "image_data_url", "run_load", "stream_chat"]
