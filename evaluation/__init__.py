"""Benchmarks, scorers and cost measurement (`mqt-llava eval`, `flops`, `bench`), and the lmms-eval plugin.

`ASSETS_DIR` holds the shipped demo model (`mqt-llava-tiny`) and the demo's recorded baselines.
"""

from pathlib import Path

ASSETS_DIR = Path(__file__).resolve().parent / "assets"

__all__ = ["ASSETS_DIR"]
