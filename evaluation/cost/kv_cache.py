"""The KV cache a forward call returns, under the installed transformers' name for it.

transformers 5.24 calls the cache `cache` (the older `past_key_values` still works there, with a deprecation
warning); 5.23 knows only `past_key_values`. A model's output carries the cache under the name its forward accepts,
so reading the name off the output works with both.
"""

from __future__ import annotations

from transformers.cache_utils import Cache
from transformers.utils import ModelOutput


def cache_name(output: ModelOutput) -> str:
    """`"cache"` or `"past_key_values"`: where `output` (of a call with `use_cache=True`) holds the cache."""
    for name in ("cache", "past_key_values"):
        if output.get(name) is not None:
            return name
    raise ValueError("the model output holds no cache: call the model with use_cache=True")


def cache_of(output: ModelOutput) -> Cache:
    """The KV cache held by `output`."""
    return output[cache_name(output)]


def next_step_inputs(output: ModelOutput) -> dict[str, Cache]:
    """The cache as the keyword argument of the next forward call: `model(input_ids=token, **next_step_inputs(out))`."""
    return {cache_name(output): cache_of(output)}


__all__ = ["cache_name", "cache_of", "next_step_inputs"]
