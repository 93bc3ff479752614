"""Tests of the LLaVA-format reader (training/data.py): conversion to TRL's format and bad-record reporting."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mqt_llava.training.data import DataError, read_llava_dataset


def _save_image(path: Path, seed: int) -> None:
    pixels = np.random.default_rng(seed).integers(0, 255, size=(12, 12, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def _record(record_id: str, image: str | None, question: str = "<image>\nWhat is shown?") -> dict:
    record = {
        "id": record_id,
        "conversations": [
            {"from": "human", "value": question},
            {"from": "gpt", "value": "A square."},
            {"from": "human", "value": "Which colour?"},
            {"from": "gpt", "value": "Red."},
        ],
    }
    if image is not None:
        record["image"] = image
    return record


@pytest.fixture()
def image_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    for index in range(3):
        _save_image(folder / f"good{index}.png", index)
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not image data")
    return folder


def _write_json_array(path: Path, records: list[dict]) -> None:
    """Writes one record per line inside the array, so record i starts on line i + 2."""
    path.write_text("[\n" + ",\n".join(json.dumps(record) for record in records) + "\n]\n")


def test_converts_llava_records_to_trl_conversations(tmp_path: Path, image_folder: Path) -> None:
    """Feature: LLaVA JSON -> TRL conversational format (messages + lazily opened images), text-only allowed."""
    data = tmp_path / "data.json"
    _write_json_array(data, [_record("a", "good0.png"), _record("text-only", None, question="Say hi.")])
    dataset, report = read_llava_dataset(data, image_folder)

    assert report.num_good == 2 and report.num_bad == 0
    first = dataset[0]
    assert first["id"] == "a"
    assert [message["role"] for message in first["messages"]] == ["user", "assistant", "user", "assistant"]
    assert [part["type"] for part in first["messages"][0]["content"]] == ["image", "text"]
    assert first["messages"][0]["content"][1]["text"] == "What is shown?"
    assert first["messages"][3]["content"] == [{"type": "text", "text": "Red."}]
    assert len(first["images"]) == 1 and first["images"][0].size == (12, 12)
    assert first["images"][0].mode == "RGB"
    assert dataset[1]["images"] == []
    assert [part["type"] for part in dataset[1]["messages"][0]["content"]] == ["text"]


def test_bad_records_are_reported_with_id_and_line(tmp_path: Path, image_folder: Path, caplog) -> None:
    """Feature: missing image, corrupt image and count mismatch are each reported with id and line number, never
    silently dropped; strict mode raises."""
    records = [
        _record("good-1", "good0.png"),
        _record("missing", "nope.png"),
        _record("corrupt", "corrupt.png"),
        _record("mismatch", "good1.png", question="<image>\n<image>\nCompare."),
        _record("good-2", "good2.png"),
    ]
    data = tmp_path / "data.json"
    _write_json_array(data, records)
    with caplog.at_level("WARNING", logger="training.data"):
        dataset, report = read_llava_dataset(data, image_folder)

    assert dataset["id"] == ["good-1", "good-2"]
    assert report.num_good == 2 and report.num_bad == 3
    assert [(error.record_id, error.line) for error in report.errors] == [
        ("missing", 3),
        ("corrupt", 4),
        ("mismatch", 5),
    ]
    assert "not found" in report.errors[0].reason and "nope.png" in report.errors[0].reason
    assert "unreadable image" in report.errors[1].reason and "corrupt.png" in report.errors[1].reason
    assert "2 <image> placeholder(s)" in report.errors[2].reason and "1 image(s)" in report.errors[2].reason
    for record_id in ("missing", "corrupt", "mismatch"):
        assert record_id in caplog.text

    with pytest.raises(DataError, match="3 bad record") as error:
        read_llava_dataset(data, image_folder, strict=True)
    assert "line 3, id 'missing'" in str(error.value)


def test_jsonl_lines_and_malformed_turns(tmp_path: Path, image_folder: Path) -> None:
    """Feature: JSON Lines input; broken JSON lines, empty turns and non-alternating roles are reported by line."""
    empty_turn = _record("empty", "good0.png")
    empty_turn["conversations"][1]["value"] = "   "
    wrong_order = _record("order", None, question="Hi")
    wrong_order["conversations"] = wrong_order["conversations"][1:]
    lines = [json.dumps(_record("ok", "good0.png")), "{not json", json.dumps(empty_turn), "", json.dumps(wrong_order)]
    data = tmp_path / "data.jsonl"
    data.write_text("\n".join(lines) + "\n")

    dataset, report = read_llava_dataset(data, image_folder)
    assert dataset["id"] == ["ok"]
    assert [(error.line, error.record_id) for error in report.errors] == [(2, None), (3, "empty"), (5, "order")]
    assert "invalid JSON" in report.errors[0].reason
    assert "turn 1 (gpt) is empty" in report.errors[1].reason
    assert "alternate" in report.errors[2].reason


def test_unreadable_inputs_raise_clear_errors(tmp_path: Path, image_folder: Path) -> None:
    """Feature: clear errors for a missing file, a non-array JSON file and a file with no usable record."""
    with pytest.raises(DataError, match="data file not found"):
        read_llava_dataset(tmp_path / "absent.json", image_folder)
    not_array = tmp_path / "object.json"
    not_array.write_text('{"id": "x"}')
    with pytest.raises(DataError, match="expected a JSON array"):
        read_llava_dataset(not_array, image_folder)
    only_bad = tmp_path / "bad.json"
    _write_json_array(only_bad, [_record("missing", "nope.png")])
    with pytest.raises(DataError, match="no usable records"):
        read_llava_dataset(only_bad, image_folder)
