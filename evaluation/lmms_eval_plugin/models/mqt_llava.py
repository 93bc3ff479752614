"""MQT-LLaVA as an lmms-eval model (`lmms` subclass): generation and log-likelihood at a chosen token budget."""

from __future__ import annotations

import logging
from collections import defaultdict

import torch
from lmms_eval.api.instance import Instance
from lmms_eval.api.model import lmms
from tqdm.auto import tqdm

from mqt_llava.evaluation.runner import answer_conversations, load_model

logger = logging.getLogger(__name__)

IMAGE_PLACEHOLDER = "<image>"


def _flatten(visuals) -> list:
    if visuals is None:
        return []
    if isinstance(visuals, (list, tuple)):
        return [item for visual in visuals for item in _flatten(visual)]
    return [visuals]


class MqtLlava(lmms):
    """lmms-eval model for an MQT-LLaVA folder.

    Args (lmms-eval `--model_args`):
        pretrained: model folder or Hub id (loaded with `trust_remote_code=True`).
        num_visual_tokens: visual tokens per image m (1..M); default: the model's generation config, else M.
        device: "cuda", "cpu", ... (default: cuda when available).
        dtype: "auto" (bf16 on CUDA, fp32 on CPU), "float32", "bfloat16" or "float16".
        batch_size: questions generated together (left-padded).
    """

    is_simple = True

    def __init__(
        self,
        pretrained: str,
        num_visual_tokens: int | None = None,
        device: str | None = None,
        dtype: str = "auto",
        batch_size: int | str = 1,
        **kwargs,
    ) -> None:
        super().__init__()
        if kwargs:
            logger.warning("mqt_llava ignores the model arguments %s", sorted(kwargs))
        self.model, self.processor = load_model(pretrained, device, dtype)
        num_queries = self.model.config.num_queries
        if num_visual_tokens is not None and (
            isinstance(num_visual_tokens, bool) or not isinstance(num_visual_tokens, int)
            or not 1 <= num_visual_tokens <= num_queries
        ):  # fmt: skip
            raise ValueError(f"num_visual_tokens must be an integer in 1..{num_queries}, got {num_visual_tokens!r}")
        self.num_visual_tokens = num_visual_tokens
        self.batch_size = int(batch_size)

    def _conversation(self, context: str, visuals: list) -> list[dict]:
        content = [{"type": "image", "image": image.convert("RGB")} for image in visuals]
        content.append({"type": "text", "text": context.replace(IMAGE_PLACEHOLDER, "").strip()})
        return [{"role": "user", "content": content}]

    def _visuals(self, doc_to_visual, doc_id, task, split) -> list:
        return _flatten(doc_to_visual(self.task_dict[task][split][doc_id]))

    @staticmethod
    def _generation_settings(gen_kwargs: dict) -> tuple[dict, list[str]]:
        """lmms-eval generation kwargs -> (`generate` kwargs, stop strings)."""
        until = gen_kwargs.get("until") or []
        until = [until] if isinstance(until, str) else list(until)
        settings = {"max_new_tokens": int(gen_kwargs.get("max_new_tokens", 1024))}
        temperature = float(gen_kwargs.get("temperature", 0) or 0)
        if temperature > 0:
            settings.update(do_sample=True, temperature=temperature, top_p=float(gen_kwargs.get("top_p") or 1.0))
        else:
            settings["do_sample"] = False
        settings["num_beams"] = int(gen_kwargs.get("num_beams", 1) or 1)
        return settings, until

    def generate_until(self, requests: list[Instance]) -> list[str]:
        """Answers each request (context, gen_kwargs, doc_to_visual, doc_id, task, split), cut at its stop strings."""
        results: list[str | None] = [None] * len(requests)
        groups: dict[str, list[int]] = defaultdict(list)
        for position, request in enumerate(requests):
            groups[repr(sorted(request.args[1].items()))].append(position)
        progress = tqdm(total=len(requests), disable=self.rank != 0, desc="mqt_llava responding")
        for positions in groups.values():
            settings, until = self._generation_settings(dict(requests[positions[0]].args[1]))
            for start in range(0, len(positions), self.batch_size):
                batch = positions[start : start + self.batch_size]
                conversations = []
                for position in batch:
                    context, _, doc_to_visual, doc_id, task, split = requests[position].args
                    conversations.append(self._conversation(context, self._visuals(doc_to_visual, doc_id, task, split)))
                texts = answer_conversations(
                    self.model, self.processor, conversations, self.num_visual_tokens, **settings
                )
                for position, text in zip(batch, texts, strict=True):
                    for stop in until:
                        if stop:
                            text = text.split(stop)[0]
                    results[position] = text
                progress.update(len(batch))
        progress.close()
        return results

    def loglikelihood(self, requests: list[Instance]) -> list[tuple[float, bool]]:
        """Log-probability of each continuation after its context and image(s), and whether greedy decoding gives it."""
        results = []
        for context, doc_to_target, doc_to_visual, doc_id, task, split in [request.args for request in requests]:
            doc = self.task_dict[task][split][doc_id]
            continuation = doc_to_target if isinstance(doc_to_target, str) else doc_to_target(doc)
            conversation = self._conversation(context, self._visuals(doc_to_visual, doc_id, task, split))
            template = {"tokenize": True, "return_dict": True, "return_tensors": "pt",
                        "processor_kwargs": {"num_visual_tokens": self.num_visual_tokens}}  # fmt: skip
            prompt = self.processor.apply_chat_template(conversation, add_generation_prompt=True, **template)
            answered = conversation + [{"role": "assistant", "content": [{"type": "text", "text": continuation}]}]
            full = self.processor.apply_chat_template(answered, **template).to(self.model.device)
            start = prompt["input_ids"].shape[1]
            end = full["input_ids"].shape[1] - 1  # the template closes the answer with </s>
            if "pixel_values" in full:
                full["pixel_values"] = full["pixel_values"].to(self.model.dtype)
            with torch.inference_mode():
                logits = self.model(**full).logits.float()
            targets = full["input_ids"][0, start:end]  # (T,)
            predicted = logits[0, start - 1 : end - 1]  # (T, vocab): position t predicts token t + 1
            log_probs = torch.log_softmax(predicted, dim=-1).gather(1, targets[:, None])[:, 0]
            results.append((float(log_probs.sum()), bool((predicted.argmax(-1) == targets).all())))
        return results

    def generate_until_multi_round(self, requests) -> list[str]:
        raise NotImplementedError("mqt_llava does not implement multi-round generation")


__all__ = ["MqtLlava"]
