"""The installed distribution: one import package (`mqt_llava`), commands that work from any folder, a fast
`mqt-llava --help`, and a wheel that carries every subpackage and the data files the commands read."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
import time
import zipfile
from importlib.util import find_spec
from pathlib import Path

import pytest

from conftest import REPO_ROOT

GENERIC_NAMES = ("training", "evaluation", "processing", "model_cards", "modeling_mqt_llava", "demo", "tools", "convert", "app")


def run(command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300, env=os.environ.copy())


def test_help_starts_without_torch_in_under_two_seconds(tmp_path):
    """Protects a fast `mqt-llava --help`: importing the command loads neither torch nor transformers, and the
    console script answers in under 2 s (best of three, the machine may be busy)."""
    probe = "import sys, mqt_llava, mqt_llava.cli; print(sorted({'torch', 'transformers'} & set(sys.modules)))"
    assert run([sys.executable, "-c", probe], tmp_path).stdout.strip() == "[]"
    times = []
    for _ in range(3):
        start = time.perf_counter()
        completed = run(["mqt-llava", "--help"], tmp_path)
        times.append(time.perf_counter() - start)
        assert completed.returncode == 0 and "subcommands:" in completed.stdout, completed.stderr
    assert min(times) < 2.0, times


def test_commands_ignore_a_users_own_generic_packages(tmp_path):
    """Protects the one namespace: run from a folder holding its own `training/`, `evaluation/`, ... packages (which
    fail when imported), the console script, `python -m mqt_llava`, a subcommand's --help and the lmms-eval entry
    point all use this package's code."""
    for name in GENERIC_NAMES:
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(f"raise ImportError('the user\\'s own {name} was imported')\n")
    for command in (["mqt-llava", "--help"], [sys.executable, "-m", "mqt_llava", "--help"]):
        completed = run(command, tmp_path)
        assert completed.returncode == 0 and "train" in completed.stdout, completed.stderr
    for subcommand in ("train", "eval", "demo", "app"):
        completed = run([sys.executable, "-m", "mqt_llava", subcommand, "--help"], tmp_path)
        assert completed.returncode == 0 and f"mqt-llava {subcommand}" in completed.stdout, completed.stderr
    probe = (
        "from importlib.metadata import entry_points\n"
        "(entry,) = entry_points(group='lmms_eval.models', name='mqt_llava')\n"
        "print(entry.value)\n"
        "entry.load()\n"
    )
    completed = run([sys.executable, "-c", probe], tmp_path)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "mqt_llava.evaluation.lmms_eval_plugin:manifest"
    if find_spec("lmms_eval") is not None:
        probe = (
            "from importlib.metadata import entry_points\n"
            "(entry,) = entry_points(group='lmms_eval.models', name='mqt_llava')\n"
            "manifest = entry.load()()\n"
            "module, _, name = manifest.simple_class_path.rpartition('.')\n"
            "import importlib\n"
            "print(manifest.model_id, getattr(importlib.import_module(module), name).__module__)\n"
        )
        completed = run([sys.executable, "-c", probe], tmp_path)
        assert completed.returncode == 0, completed.stderr
        assert completed.stdout.split() == ["mqt_llava", "mqt_llava.evaluation.lmms_eval_plugin.models.mqt_llava"]


def test_wheel_installs_one_import_package_with_its_data(tmp_path):
    """Protects what `pip install mqt-llava` puts in site-packages: only `mqt_llava` (and its dist-info), every
    subpackage folder of the repository, the recipes, launch configs, model-card template and shipped demo model."""
    pytest.importorskip(
        "setuptools.command.bdist_wheel", reason="building the wheel offline needs setuptools >= 70.1 installed here"
    )
    source = tmp_path / "source"
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout
    for name in tracked.splitlines():
        if (REPO_ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO_ROOT / name, source / name)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(tmp_path / "dist"), str(source)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("mqt_llava-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {name.split("/")[0] for name in names} == {"mqt_llava", wheel.name.split("-py3")[0] + ".dist-info"}

    config = configparser.ConfigParser()
    config.read(REPO_ROOT / "setup.cfg")
    for line in config["options"]["package_dir"].strip().splitlines():
        package, folder = (part.strip() for part in line.split("="))
        for init in (REPO_ROOT / folder).rglob("__init__.py"):
            if "assets" in init.parts:
                continue
            inside = init.relative_to(REPO_ROOT / folder).as_posix()
            assert f"{package.replace('.', '/')}/{inside}" in names, f"{folder}/{inside} is not in the wheel"
    for data in (
        "mqt_llava/training/recipes/qlora.yaml",
        "mqt_llava/training/launch/zero3.yaml",
        "mqt_llava/model_cards/model_card.md.jinja",
        "mqt_llava/evaluation/assets/mqt-llava-tiny/model.safetensors",
        "mqt_llava/evaluation/assets/mqt-llava-tiny/modeling_mqt_llava.py",
    ):
        assert data in names, data
    entry_points = next(name for name in names if name.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "mqt-llava = mqt_llava.cli:main" in text
    assert "mqt_llava = mqt_llava.evaluation.lmms_eval_plugin:manifest" in text
