"""Forward FLOPs of one prompt at a token budget m, as `mqt-llava flops` and `mqt-llava demo` count them: vision
tower + query transformer + language-model prefill (`evaluation.cost.flop_counting.count_parts`)."""

from __future__ import annotations

from functools import lru_cache

from torch import nn

from mqt_llava.evaluation.cost.flop_counting import PartFlops, count_on_fake_tensors, count_parts

__all__ = ["PromptCost", "format_flops"]


class PromptCost:
    """FLOPs of prompts for one model, counted on fake tensors of the model's own class and config (so the count
    needs no memory, is the same on every device and dtype, and leaves the loaded weights alone)."""

    def __init__(self, model: nn.Module) -> None:
        self._model_class, self._config = type(model), model.config
        self.count = lru_cache(maxsize=256)(self._count)

    def _count(self, prompt_tokens: int, num_visual_tokens: int) -> PartFlops:
        """Parts of one forward pass over `prompt_tokens` text tokens and an image of m = `num_visual_tokens`."""
        return count_on_fake_tensors(
            lambda: self._model_class(self._config),
            lambda model: count_parts(
                model,
                image_size=self._config.vision_config.image_size,
                prompt_tokens=prompt_tokens,
                num_visual_tokens=num_visual_tokens,
                image_kwargs={"num_visual_tokens": num_visual_tokens},
            ),
        )


def format_flops(flops: float) -> str:
    """`175.8 MFLOPs`, `1.292 TFLOPs`: four significant digits and the largest SI prefix below the value."""
    for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if flops >= scale:
            return f"{flops / scale:.4g} {prefix}FLOPs"
    return f"{flops:.0f} FLOPs"
