"""The `mqt-llava` console script: help, and a generate run on a freshly created tiny model, as real subprocesses."""

from __future__ import annotations

import os
import subprocess

from mqt_llava.cli import SUBCOMMANDS
from mqt_llava.tools.testing import make_image


def run_cli(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(["mqt-llava", *args], capture_output=True, text=True, cwd=cwd, env=os.environ.copy(), timeout=300)


def test_help_lists_every_subcommand(tmp_path):
    """Protects the console script entry point and its subcommand index."""
    completed = run_cli("--help", cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr
    for name in SUBCOMMANDS:
        assert name in completed.stdout


def test_create_then_generate_streams_an_answer(tmp_path):
    """Protects `mqt-llava create` + `mqt-llava generate`: the answer is printed, and a bad budget is refused with
    the valid range."""
    assert run_cli("create", "--out", str(tmp_path / "model"), cwd=tmp_path).returncode == 0
    make_image(3, (48, 30)).save(tmp_path / "image.png")
    common = ["generate", "--model", str(tmp_path / "model"), "--image", str(tmp_path / "image.png"), "--prompt", "what is in the image ?"]
    completed = run_cli(*common, "--num-visual-tokens", "4", "--max-new-tokens", "4", cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr
    assert len(completed.stdout.split()) >= 1
    refused = run_cli(*common, "--num-visual-tokens", "99", cwd=tmp_path)
    assert refused.returncode != 0 and "1..16" in refused.stderr
