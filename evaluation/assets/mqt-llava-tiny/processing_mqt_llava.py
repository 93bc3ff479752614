"""Processor of MQT-LLaVA: a stock image processor, a tokenizer with an `<image>` token and a Vicuna v1 chat template.

Each `<image>` in the text becomes a run of k image tokens, k being the call's `num_visual_tokens` or the saved
default; the model reads m for each image from the length of its run.
"""


import os
from contextvars import ContextVar
from typing import Any

from transformers.image_utils import load_image
from transformers.processing_utils import ProcessorMixin
from transformers.utils import logging

logger = logging.get_logger(__name__)

# The run length the running `MqtLlavaProcessor.__call__` resolved, read by `replace_image_token`: transformers hands
# that hook only the image processor's keyword arguments, and the budget is not one of them. A context variable keeps
# concurrent calls (threads, async tasks) apart.
_CALL_RUN_LENGTH: ContextVar[int | None] = ContextVar("mqt_llava_image_run_length", default=None)

VICUNA_SYSTEM_PROMPT = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)

# Vicuna v1: "<s>SYSTEM USER: <image>\nQ ASSISTANT: A</s>USER: Q2 ASSISTANT:". Assistant answers (with their </s>) sit
# in {% generation %} blocks so that `return_assistant_tokens_mask=True` marks exactly the tokens to learn.
VICUNA_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- if messages[0]['content'] is string -%}{{ messages[0]['content'] }}"
    "{%- else -%}{%- for item in messages[0]['content'] if item['type'] == 'text' -%}{{ item['text'] }}{%- endfor -%}"
    "{%- endif -%}"
    "{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}{{ '" + VICUNA_SYSTEM_PROMPT.replace("'", "\\'") + "' }}{%- set loop_messages = messages -%}"
    "{%- endif -%}"
    "{{ ' ' }}"
    "{%- for message in loop_messages -%}"
    "{%- if message['role'] == 'user' -%}"
    "{{ 'USER: ' }}"
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- else -%}{%- for item in message['content'] -%}"
    "{%- if item['type'] in ('image', 'image_url') -%}{{ '<image>\\n' }}"
    "{%- elif item['type'] == 'text' -%}{{ item['text'] }}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{ ' ASSISTANT:' }}"
    "{%- elif message['role'] == 'assistant' -%}"
    "{{ ' ' }}{%- generation -%}"
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- else -%}{%- for item in message['content'] if item['type'] == 'text' -%}{{ item['text'] }}{%- endfor -%}"
    "{%- endif -%}"
    "{{ eos_token }}{%- endgeneration -%}"
    "{%- else -%}{{ raise_exception('Vicuna v1 conversations alternate user and assistant turns, got role ' + message['role']) }}"
    "{%- endif -%}"
    "{%- endfor -%}"
)


def check_num_visual_tokens(value: object, num_queries: int) -> int:
    """Returns `value` if it is an integer in 1..num_queries, else raises a `ValueError` naming the valid range.

    (The same rule as the configuration's; repeated here because this file ships to the Hub on its own.)
    """
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= num_queries:
        raise ValueError(f"num_visual_tokens must be an integer in 1..{num_queries} (the model's number of queries), got {value!r}")
    return value


def _open_image_files(images: Any) -> Any:
    """Opens every path in a (nested) list of images, naming the file when it cannot be read."""
    if isinstance(images, (list, tuple)):
        return [_open_image_files(image) for image in images]
    if isinstance(images, (str, os.PathLike)) and not str(images).startswith(("http://", "https://", "data:")):
        try:
            return load_image(os.fspath(images))
        except (OSError, ValueError) as error:
            raise ValueError(f"Cannot read image file {os.fspath(images)!r}: {error}") from error
    return images


class MqtLlavaProcessor(ProcessorMixin):
    r"""
    Processor of MQT-LLaVA.

    Args:
        image_processor: a stock transformers image processor (LLaVA's pad-to-square PIL processor for CLIP towers).
        tokenizer: a tokenizer that has `image_token` as a special token.
        chat_template (`str`, *optional*): defaults to the Vicuna v1 template with `{% generation %}` markers.
        num_queries (`int`, defaults to 256): M, the model's number of queries (the largest budget).
        num_visual_tokens (`int`, *optional*): default k for each `<image>`; `None` means M.
        image_token (`str`, defaults to `"<image>"`): the placeholder written in prompts.
    """

    # `num_visual_tokens` is a named argument of `__call__`, never handed on to `ProcessorMixin`: transformers
    # before 5.20 accepts only per-modality entries (text_kwargs, images_kwargs, ...) in `valid_processor_kwargs`.

    def __init__(
        self,
        image_processor=None,
        tokenizer=None,
        chat_template: str | None = None,
        num_queries: int = 256,
        num_visual_tokens: int | None = None,
        image_token: str = "<image>",
        **kwargs,
    ):
        self.num_queries = num_queries
        self.num_visual_tokens = None if num_visual_tokens is None else check_num_visual_tokens(num_visual_tokens, num_queries)
        self.image_token = image_token
        self.image_token_id = tokenizer.convert_tokens_to_ids(image_token)
        if self.image_token_id is None or self.image_token_id == tokenizer.unk_token_id:
            raise ValueError(f"The tokenizer has no {image_token!r} token; add it as a special token first.")
        super().__init__(image_processor, tokenizer, chat_template=chat_template or VICUNA_CHAT_TEMPLATE)

    def __call__(self, images=None, text=None, num_visual_tokens: int | None = None, **kwargs):
        """Tokenizes `text` with every `<image>` expanded to k image tokens and processes `images`.

        k = `num_visual_tokens` if given, else the processor's saved default, else M. Image files given by path are
        opened here (a corrupt file raises a `ValueError` naming it). Returns `input_ids`, `attention_mask` and
        `pixel_values` (n_images, 3, H, W).
        """
        k = num_visual_tokens if num_visual_tokens is not None else self.default_run_length
        k = check_num_visual_tokens(k, self.num_queries)
        bos = self.tokenizer.bos_token
        texts = [text] if isinstance(text, str) else text
        if bos and texts and "add_special_tokens" not in kwargs and all(t.startswith(bos) for t in texts):
            # a prompt rendered by the chat template already starts with BOS: do not add a second one
            kwargs["add_special_tokens"] = False
        if images is not None:
            images = _open_image_files(images)
        run_length = _CALL_RUN_LENGTH.set(k)
        try:
            return super().__call__(images=images, text=text, **kwargs)
        finally:
            _CALL_RUN_LENGTH.reset(run_length)

    @property
    def default_run_length(self) -> int:
        """Image tokens per `<image>` when a call names none: the saved `num_visual_tokens`, else M."""
        return self.num_visual_tokens if self.num_visual_tokens is not None else self.num_queries

    def replace_image_token(self, image_inputs: dict, image_idx: int, **kwargs) -> str:
        """The text that stands for image `image_idx` (transformers' hook): a run of k image tokens, k as resolved by
        the running `__call__` (outside a call: `default_run_length`)."""
        run_length = _CALL_RUN_LENGTH.get()
        return self.image_token * (run_length if run_length is not None else self.default_run_length)

    @property
    def model_input_names(self) -> list[str]:
        return ["input_ids", "attention_mask", "pixel_values"]


# Saved folders carry this file and an `auto_map` entry, so they load with `trust_remote_code=True`.
MqtLlavaProcessor.register_for_auto_class("AutoProcessor")

__all__ = ["MqtLlavaProcessor", "VICUNA_CHAT_TEMPLATE", "VICUNA_SYSTEM_PROMPT"]
