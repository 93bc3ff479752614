"""`mqt-llava app`: serve the web demo (Gradio) on the shipped demo model or any MQT-LLaVA folder.

The model loads on the GPU when CUDA is there, else on the CPU. Gradio comes with `pip install "mqt-llava[app]"`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mqt_llava.demo.cli import SHIPPED_MODEL

__all__ = ["add_arguments", "run", "serve"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=str(SHIPPED_MODEL),
                        help="MQT-LLaVA model folder or Hub id (default: the shipped demo model)")  # fmt: skip
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=None, help="port (default: Gradio's, 7860 or the next free one)")
    parser.add_argument("--share", action="store_true", help="also ask Gradio for a temporary public link")
    parser.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    parser.add_argument("--dtype", choices=["auto", "float32", "bfloat16", "float16"], default="auto",
                        help="weights' dtype (default: as saved)")  # fmt: skip
    parser.add_argument("--max-new-tokens", type=int, default=128, help="longest answer in tokens (default: %(default)s)")


def serve(
    model: str | Path | None = None,
    host: str | None = None,
    port: int | None = None,
    share: bool = False,
    device: str | None = None,
    dtype: str = "auto",
    max_new_tokens: int = 128,
) -> None:
    """Loads `model` (a folder or Hub id; default: the shipped demo model), builds the page and serves it until
    interrupted (see `ui.launch` for `host`, `port` and `share`)."""
    try:
        from .ui import build_app, launch
    except ImportError as error:
        raise ValueError(f"the app needs Gradio ({error}); install it with: pip install \"mqt-llava[app]\"") from error
    from .compare import Comparer
    from .examples import example_scenes
    from .session import AppSession

    if max_new_tokens < 1:
        raise ValueError(f"--max-new-tokens must be a positive integer, got {max_new_tokens}")
    model = model or SHIPPED_MODEL
    folder = Path(model)
    if folder.exists() and not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{folder} is not a model folder (no config.json)")
    try:
        session = AppSession.load(model, device=device, dtype=dtype, max_new_tokens=max_new_tokens)
    except OSError as error:
        raise FileNotFoundError(f"could not load a model from {model}: {error}") from error
    examples = example_scenes()
    comparer = Comparer(session)
    session.warm_up(examples[0].image)
    launch(build_app(comparer, examples), host=host, port=port, share=share)


def run(args: argparse.Namespace) -> int:
    serve(args.model, args.host, args.port, args.share, args.device, args.dtype, args.max_new_tokens)
    return 0
