"""Training as real processes: 2-rank DDP through `accelerate launch`, SIGKILL then resume, and the `mqt-llava
train` CLI on a file with bad records (training/cli.py, training/sft.py, training/collator.py)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from accelerate.commands.config.config_args import ClusterConfig
from accelerate.utils import DistributedType
from safetensors.torch import load_file

from mqt_llava.cli import main as cli_main
from mqt_llava.tools.testing import save_tiny_model
from mqt_llava.tools.toy_data import toy_record, write_toy_dataset
from mqt_llava.training.sampling import parse_distribution
from mqt_llava.training.sft import resolve_checkpoint

REPO = Path(__file__).resolve().parents[1]
STAGE2 = REPO / "training" / "recipes" / "stage2_instruct.yaml"
LAUNCH = REPO / "training" / "launch"

DDP_SCRIPT = """
import json, sys
import torch
from safetensors.torch import save_file
from mqt_llava.training.arguments import parse_recipe
from mqt_llava.training.sft import build_trainer

out = sys.argv[1]
trainer = build_trainer(*parse_recipe(sys.argv[2], sys.argv[3:]))
runs = []
image_token_id = trainer.model.config.image_token_id
def record_m(module, args, kwargs):
    ids = kwargs["input_ids"]
    runs.append(int((ids == image_token_id).sum()) // int(kwargs["pixel_values"].shape[0]))
trainer.model.model.register_forward_pre_hook(record_m, with_kwargs=True)
trainer.train()
rank = trainer.args.process_index
state = {k: v.detach().contiguous() for k, v in trainer.accelerator.unwrap_model(trainer.model).state_dict().items()}
save_file(state, f"{out}/rank{rank}.safetensors")
report = {"world_size": trainer.args.world_size, "process_group": torch.distributed.get_world_size(), "m": runs}
with open(f"{out}/rank{rank}.json", "w") as f:
    json.dump(report, f)
trainer.end()
"""


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("launch")
    data_path, image_folder = write_toy_dataset(root / "data", num_records=6)
    return {"root": root, "model": save_tiny_model(root / "model"), "data": data_path, "images": image_folder}


def _overrides(workspace: dict[str, Path], output_dir: Path, *extra: str) -> list[str]:
    return [
        "--model_name_or_path",
        str(workspace["model"]),
        "--data_path",
        str(workspace["data"]),
        "--image_folder",
        str(workspace["images"]),
        "--output_dir",
        str(output_dir),
        "--per_device_train_batch_size",
        "2",
        "--gradient_accumulation_steps",
        "1",
        "--learning_rate",
        "1e-3",
        "--warmup_steps",
        "0",
        "--dtype",
        "float32",
        "--bf16",
        "false",
        "--use_cpu",
        "true",
        "--dataloader_num_workers",
        "0",
        "--logging_steps",
        "1",
        *extra,
    ]


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "OMP_NUM_THREADS": "1"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_ddp_two_cpu_ranks_end_with_identical_weights(tmp_path: Path, workspace) -> None:
    """Feature: the shipped DDP launch config with `--multi_gpu --num_processes 2` on CPU really runs 2 ranks; each
    rank draws its own seeded m stream; DDP keeps the weights identical across ranks."""
    script = tmp_path / "ddp_train.py"
    script.write_text(DDP_SCRIPT)
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(LAUNCH / "ddp.yaml"),
        "--multi_gpu",
        "--num_processes",
        "2",
        "--mixed_precision",
        "no",
        "--main_process_port",
        str(_free_port()),
        str(script),
        str(tmp_path),
        str(STAGE2),
        *_overrides(workspace, tmp_path / "out", "--max_steps", "3", "--save_strategy", "no", "--seed", "7"),
    ]
    env = {**_env(tmp_path), "ACCELERATE_USE_CPU": "1"}
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=400, check=False)
    assert result.returncode == 0, result.stderr[-4000:]

    reports = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    assert [(r["world_size"], r["process_group"]) for r in reports] == [(2, 2), (2, 2)]
    paper = parse_distribution("paper", 16)
    for rank, report in enumerate(reports):
        assert report["m"] == [paper.draw(7, rank, index) for index in range(3)]
    assert reports[0]["m"] != reports[1]["m"]
    weights = [load_file(tmp_path / f"rank{rank}.safetensors") for rank in (0, 1)]
    initial = load_file(workspace["model"] / "model.safetensors")
    assert weights[0].keys() == weights[1].keys()
    for name in weights[0]:
        assert torch.equal(weights[0][name], weights[1][name]), name
    assert not torch.equal(weights[0]["lm_head.weight"], initial["lm_head.weight"])


def _train_command(workspace: dict[str, Path], output_dir: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "mqt_llava",
        "train",
        str(STAGE2),
        *_overrides(
            workspace, output_dir, "--max_steps", "12", "--save_strategy", "steps", "--save_steps", "3", *extra
        ),
    ]


def test_sigkilled_run_resumes_to_the_uninterrupted_weights(tmp_path: Path, workspace) -> None:
    """Feature: a run killed with SIGKILL after its first checkpoint resumes with --resume_from_checkpoint and ends
    with exactly the weights of an uninterrupted run with the same seed (m draws included)."""
    env = _env(tmp_path)
    killed_dir, straight_dir = tmp_path / "killed", tmp_path / "straight"
    straight = subprocess.Popen(
        _train_command(workspace, straight_dir),
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    process = subprocess.Popen(
        _train_command(workspace, killed_dir), cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 300
    while not list(killed_dir.glob("checkpoint-*/trainer_state.json")):
        assert process.poll() is None, process.stderr.read().decode()[-3000:]
        assert time.monotonic() < deadline, "no checkpoint written in time"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=60) == -signal.SIGKILL
    process.stderr.close()
    assert not (killed_dir / "model.safetensors").exists(), "the run finished before it could be killed"

    resumed = subprocess.run(
        _train_command(workspace, killed_dir, "--resume_from_checkpoint", "last"),
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming from {killed_dir}/checkpoint-" in resumed.stderr
    # the processor is read as an MQT-LLaVA folder, not through a bare config (which transformers warns about)
    assert "to instantiate a model of type" not in resumed.stderr
    _, straight_errors = straight.communicate(timeout=300)
    assert straight.returncode == 0, straight_errors.decode()[-3000:]

    resumed_weights = load_file(killed_dir / "model.safetensors")
    straight_weights = load_file(straight_dir / "model.safetensors")
    assert resumed_weights.keys() == straight_weights.keys()
    for name in straight_weights:
        assert torch.equal(resumed_weights[name], straight_weights[name]), name


def test_cli_reports_bad_records_and_strict_fails(tmp_path: Path, workspace, caplog) -> None:
    """Feature: `mqt-llava train` on a file with a missing image, a corrupt image and a count mismatch reports three
    errors with ids and line numbers; --strict exits non-zero; without it the good records still train."""
    images = workspace["images"]
    (tmp_path / "corrupt.png").write_bytes(b"not an image at all")
    mismatch = toy_record(7, str(images / "1.png"))
    mismatch["conversations"][0]["value"] = "<image>\n<image>\nwhat is in the image ?"
    records = [
        toy_record(0, str(images / "0.png")),
        toy_record(1, str(tmp_path / "missing.png")) | {"id": "missing"},
        toy_record(2, str(tmp_path / "corrupt.png")) | {"id": "corrupt"},
        mismatch | {"id": "mismatch"},
        toy_record(4, str(images / "4.png")),
    ]
    data = tmp_path / "bad.jsonl"
    data.write_text("\n".join(json.dumps(record) for record in records) + "\n")
    arguments = [
        "train",
        str(STAGE2),
        *_overrides(workspace, tmp_path / "out", "--max_steps", "2", "--save_strategy", "no"),
        "--data_path",
        str(data),
        "--image_folder",
        str(tmp_path),
    ]

    with caplog.at_level("WARNING", logger="training"):
        assert cli_main([*arguments, "--strict", "true"]) != 0
    for record_id, line in (("missing", 2), ("corrupt", 3), ("mismatch", 4)):
        assert f"line {line}, id '{record_id}'" in caplog.text
    assert not (tmp_path / "out" / "model.safetensors").exists()

    caplog.clear()
    with caplog.at_level("WARNING", logger="training"):
        assert cli_main(arguments) == 0
    assert "2 good records, 3 bad" in caplog.text or "training on 2 records; 3 bad" in caplog.text
    assert (tmp_path / "out" / "model.safetensors").is_file()


def test_launch_configs_are_valid_accelerate_configs() -> None:
    """Feature: the shipped accelerate configs (DDP, FSDP, ZeRO-2, ZeRO-3) load as accelerate cluster configs."""
    expected = {
        "ddp.yaml": (DistributedType.MULTI_GPU, None),
        "fsdp.yaml": (DistributedType.FSDP, None),
        "zero2.yaml": (DistributedType.DEEPSPEED, 2),
        "zero3.yaml": (DistributedType.DEEPSPEED, 3),
    }
    assert sorted(path.name for path in LAUNCH.glob("*.yaml")) == sorted(expected)
    for name, (distributed_type, zero_stage) in expected.items():
        config = ClusterConfig(**yaml.safe_load((LAUNCH / name).read_text()))
        assert config.distributed_type == distributed_type
        assert (config.deepspeed_config or {}).get("zero_stage") == zero_stage
    assert ClusterConfig(**yaml.safe_load((LAUNCH / "fsdp.yaml").read_text())).fsdp_config["fsdp_version"] == 2


def test_resume_last_skips_an_incomplete_checkpoint(tmp_path: Path) -> None:
    """Feature: `--resume_from_checkpoint last` takes the newest complete checkpoint (a kill while saving leaves a
    folder without trainer_state.json); a missing or incomplete explicit checkpoint is a clear error."""
    (tmp_path / "checkpoint-3").mkdir()
    (tmp_path / "checkpoint-3" / "trainer_state.json").write_text("{}")
    (tmp_path / "checkpoint-12").mkdir()
    assert resolve_checkpoint("last", str(tmp_path)) == str(tmp_path / "checkpoint-3")
    assert resolve_checkpoint(None, str(tmp_path)) is None
    with pytest.raises(ValueError, match="not a complete checkpoint"):
        resolve_checkpoint(str(tmp_path / "checkpoint-12"), str(tmp_path))
    with pytest.raises(ValueError, match="holds no complete checkpoint"):
        resolve_checkpoint("last", str(tmp_path / "checkpoint-12"))
