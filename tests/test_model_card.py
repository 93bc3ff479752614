"""Tests of the model-card template (`model_cards.render_model_card`) and `mqt-llava push` (issue 4, item 5)."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from huggingface_hub import ModelCard

from conftest import REPO_ROOT, run_isolated
from mqt_llava.cli import main as cli_main
from mqt_llava.model_cards import render_model_card
from mqt_llava.tools.testing import make_image

RESULTS = [
    {"m": 1, "background": 0.97, "count": 0.31, "TFLOPs": 0.0123},
    {"m": 16, "background": 0.99, "count": 0.74, "TFLOPs": 0.0456},
]


def render_full_card(**overrides) -> ModelCard:
    arguments = {
        "title": "Tiny MQT-LLaVA",
        "description": "A tiny model for tests.",
        "num_queries": 16,
        "repo_id": "someone/tiny-mqt-llava",
        "base_models": ["someone/base"],
        "tags": ["shapes-vqa"],
        "results": RESULTS,
        "results_caption": "Accuracy on Shapes-VQA per token budget.",
        "training": {"seed": 0, "command": "`mqt-llava demo --train`", "wall time": "12 min"},
        "sections": [("Limitations", "Synthetic data only.")],
        "extra_metadata": {"mqt_llava_results": {"16": {"count": 0.74}}},
    }
    return render_model_card(**{**arguments, **overrides})


def test_card_metadata_round_trips(tmp_path):
    """Feature: Hub metadata. The saved card's YAML carries pipeline tag, library, license, base models, tags and any
    extra keys, and reads back through `huggingface_hub.ModelCard.load`."""
    render_full_card().save(tmp_path / "README.md")
    data = ModelCard.load(tmp_path / "README.md").data
    assert data.pipeline_tag == "image-text-to-text"
    assert data.library_name == "transformers"
    assert data.license == "apache-2.0"
    assert data.base_model == ["someone/base"]
    assert {"mqt-llava", "custom_code", "shapes-vqa"} <= set(data.tags)
    assert data.to_dict()["mqt_llava_results"] == {"16": {"count": 0.74}}


def test_card_body_has_usage_results_and_provenance():
    """Feature: card content. The usage snippet loads with `trust_remote_code` and picks budgets, the results rows
    become a Markdown table, the training provenance and extra sections appear; optional parts vanish when absent."""
    text = render_full_card().text
    assert 'model="someone/tiny-mqt-llava", trust_remote_code=True' in text
    assert "| m | background | count | TFLOPs |" in text
    assert "| 16 | 0.99 | 0.74 | 0.0456 |" in text
    assert "Accuracy on Shapes-VQA per token budget." in text
    assert "- **command**: `mqt-llava demo --train`" in text
    assert "## Limitations\n\nSynthetic data only." in text
    assert "assistant_only_loss=True" in text

    bare = render_model_card(title="T", description="D.", num_queries=16).text
    assert "## Results" not in bare and "## Training" not in bare
    assert "\n\n\n" not in bare


def test_results_rows_must_share_columns():
    """Feature: bad input gets a clear error. Rows with different columns are refused, naming the row."""
    rows = [{"m": 1, "acc": 0.5}, {"m": 2, "accuracy": 0.6}]
    with pytest.raises(ValueError, match="results row 1"):
        render_model_card(title="T", description="D.", num_queries=4, results=rows)


def test_usage_snippet_runs_on_a_saved_model(tiny_model_dir, tmp_path):
    """Feature: the card's usage snippet is real. Rendered for a saved tiny model, its Python block runs in a fresh
    interpreter that cannot import this repository, and answers at every budget it lists."""
    card = render_model_card(title="T", description="D.", num_queries=16, repo_id=str(tiny_model_dir))
    snippet = re.search(r"```python\n(.*?)```", card.text, re.S).group(1)
    make_image(0, 32).save(tmp_path / "photo.jpg")
    script = "import contextlib, io, json\nbuffer = io.StringIO()\nwith contextlib.redirect_stdout(buffer):\n"
    script += "".join(f"    {line}\n" for line in snippet.splitlines())
    script += "json.dump(buffer.getvalue().splitlines(), open(RESULT_PATH, 'w'))\n"
    lines = run_isolated(script, tmp_path)
    assert [line.split(" ")[0] for line in lines] == ["16", "4", "1"]


def run_push(*arguments: str, env_changes: dict[str, str | None]) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key not in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")}
    for key, value in env_changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return subprocess.run(
        [sys.executable, "-m", "mqt_llava", "push", *arguments],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.fixture
def model_folder(tmp_path) -> Path:
    """A folder shaped like a saved model (the push command only looks at files), with a cache folder to skip."""
    folder = tmp_path / "model"
    (folder / ".cache" / "huggingface").mkdir(parents=True)
    (folder / ".cache" / "huggingface" / "download.lock").write_text("")
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"0" * 2048)
    render_full_card().save(folder / "README.md")
    return folder


def test_push_dry_run_lists_files_and_contacts_nobody(model_folder, tmp_path):
    """Feature: `push --dry-run`. It lists the files an upload would send (skipping caches) with their sizes, needs
    no token, and works with the Hub unreachable."""
    done = run_push(str(model_folder), "--repo-id", "someone/tiny", "--dry-run",
                    env_changes={"HF_HOME": str(tmp_path / "home"), "HF_ENDPOINT": "http://127.0.0.1:9"})  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "would upload 3 files" in done.stdout and "someone/tiny" in done.stdout
    assert "model.safetensors" in done.stdout and "README.md" in done.stdout and ".cache" not in done.stdout


@pytest.mark.parametrize(
    ("env_changes", "message"),
    [
        ({"HF_HUB_OFFLINE": None}, "no Hugging Face token"),
        ({"HF_TOKEN": "hf_test", "HF_HUB_OFFLINE": "1"}, "HF_HUB_OFFLINE is set"),
        ({"HF_TOKEN": "hf_test", "HF_HUB_OFFLINE": None, "HF_ENDPOINT": "http://127.0.0.1:9"}, "cannot reach the Hub"),
    ],
    ids=["no-token", "offline", "unreachable"],
)
def test_push_fails_clearly_before_uploading(model_folder, tmp_path, env_changes, message):
    """Feature: `push` without a token or network fails with a clear message, saying nothing was uploaded, before
    any upload starts."""
    done = run_push(str(model_folder), "--repo-id", "someone/tiny",
                    env_changes={"HF_HOME": str(tmp_path / "home"), **env_changes})  # fmt: skip
    assert done.returncode == 1
    assert message in done.stderr and "nothing was uploaded" in done.stderr


def test_push_refuses_a_folder_that_is_not_a_model(model_folder, caplog):
    """Feature: `push` checks its input first. Pickled weights and a missing config are named, and a malformed
    repository id is refused."""
    (model_folder / "config.json").unlink()
    (model_folder / "pytorch_model.bin").write_bytes(b"0")
    with caplog.at_level(logging.ERROR):
        assert cli_main(["push", str(model_folder), "--repo-id", "someone/tiny", "--dry-run"]) == 1
        assert "no config.json" in caplog.text and "pytorch_model.bin" in caplog.text
        assert cli_main(["push", str(model_folder), "--repo-id", "no-slash"]) == 2
        assert "ORG/NAME" in caplog.text
