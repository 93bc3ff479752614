"""MQT-LLaVA: a LLaVA-style vision-language model whose query transformer turns an image into any number of visual
tokens from 1 to M, as a Hugging Face Hub-native package.

    from mqt_llava import MqtLlavaForConditionalGeneration, MqtLlavaProcessor

The public names load on first use, and loading them registers MQT-LLaVA with transformers' Auto classes (see
`mqt_llava.auto`). `import mqt_llava` alone imports neither torch nor transformers, so the `mqt-llava` command starts
at once. Subpackages: `modeling_mqt_llava` and `processing` (the remote-code payload and processor builders),
`training`, `evaluation`, `demo`, `convert`, `model_cards` and `tools`; `cli` is the `mqt-llava` command.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mqt_llava.auto import (
        MatryoshkaQueryTransformer,
        MqtLlavaConfig,
        MqtLlavaForConditionalGeneration,
        MqtLlavaModel,
        MqtLlavaPreTrainedModel,
        MqtLlavaProcessor,
    )

__version__ = "0.1.0"

__all__ = [
    "MatryoshkaQueryTransformer",
    "MqtLlavaConfig",
    "MqtLlavaForConditionalGeneration",
    "MqtLlavaModel",
    "MqtLlavaPreTrainedModel",
    "MqtLlavaProcessor",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from mqt_llava import auto

        return getattr(auto, name)
    raise AttributeError(f"module 'mqt_llava' has no attribute {name!r}")
