"""Shared fixtures: offline Hub settings, a tiny saved model folder, and a runner for fresh Python subprocesses that
cannot import this repository (so only the remote code saved in a folder can be used)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
REPO_PACKAGES = ("mqt_llava",)  # the one import package this repository installs

# Runs first in every isolated subprocess: hides the repository's packages from both sys.path and the editable
# install's import hook, and proves it. (Only the repository root leaves sys.path: a virtual environment may live
# inside the checkout, as the README's does.)
ISOLATION_PREAMBLE = f"""
import importlib.abc, importlib.util, sys
class _BlockRepository(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {REPO_PACKAGES!r}:
            raise ModuleNotFoundError(f"{{name}} is hidden from this subprocess")
        return None
sys.meta_path.insert(0, _BlockRepository())
sys.path = [p for p in sys.path if p not in ("", ".", {str(REPO_ROOT)!r})]
try:
    import mqt_llava
    raise SystemExit("the repository is importable in the isolated subprocess")
except ModuleNotFoundError:
    pass
"""


@pytest.fixture(autouse=True, scope="session")
def _offline_hub(tmp_path_factory):
    """No network, and remote-code module caches inside the test sandbox."""
    home = tmp_path_factory.mktemp("hf_home")
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["HF_HOME"] = str(home)
    os.environ["HF_MODULES_CACHE"] = str(home / "modules")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def run_isolated(script: str, tmp_path: Path, timeout: int = 300, python: str = sys.executable) -> dict:
    """Runs `script` in a fresh interpreter (`python`, default this one) that cannot import this repository; the
    script must write a JSON object to the path in the variable `RESULT_PATH`. Returns that object."""
    result_path = tmp_path / f"result_{abs(hash(script))}.json"
    source = ISOLATION_PREAMBLE + f"\nRESULT_PATH = {str(result_path)!r}\n" + textwrap.dedent(script)
    completed = subprocess.run(
        [python, "-c", source], cwd=tmp_path, capture_output=True, text=True, timeout=timeout, env=os.environ.copy()
    )
    if completed.returncode != 0:
        raise AssertionError(f"isolated subprocess failed:\n{completed.stdout[-3000:]}\n{completed.stderr[-6000:]}")
    return json.loads(result_path.read_text())


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A saved tiny random model folder (M = 16 queries, CLIP 32 px / patch 8, Llama hidden 64)."""
    from mqt_llava.tools.testing import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("tiny_model"), seed=0)
