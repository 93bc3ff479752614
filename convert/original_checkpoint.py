"""Reads weight folders in other projects' layouts (the released MQT-LLaVA checkpoint, a CLIP folder) shard by shard.

Safetensors files are read lazily (headers first, one tensor at a time). Pickled `.bin` shards are refused unless the
caller allows them, and then loaded with `torch.load(weights_only=True)`, one shard at a time.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open

logger = logging.getLogger(__name__)

SAFETENSORS_INDEX = "model.safetensors.index.json"
PICKLE_INDEX = "pytorch_model.bin.index.json"

_SAFETENSORS_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}


class CheckpointError(ValueError):
    """A weight folder that cannot be read or converted; the message names the folder, file or tensor at fault."""


@dataclass(frozen=True)
class TensorInfo:
    """Where a tensor lives and what it looks like, read without loading its data."""

    name: str
    shape: tuple[int, ...]
    dtype: torch.dtype
    file: Path


def _shards_from_index(folder: Path, index_name: str) -> list[Path]:
    index = json.loads((folder / index_name).read_text())
    names = sorted(set(index["weight_map"].values()))
    missing = [name for name in names if not (folder / name).is_file()]
    if missing:
        raise CheckpointError(f"{folder / index_name} lists shards that are not in the folder: {missing}")
    return [folder / name for name in names]


def find_weight_files(folder: Path, allow_pickle: bool) -> list[Path]:
    """The weight files of `folder`: safetensors shards (from the index, else every `*.safetensors`), else pickled
    `.bin` shards, which raise a `CheckpointError` unless `allow_pickle`."""
    if not folder.is_dir():
        raise CheckpointError(f"{folder} is not a folder")
    if (folder / SAFETENSORS_INDEX).is_file():
        return _shards_from_index(folder, SAFETENSORS_INDEX)
    safetensors_files = sorted(folder.glob("*.safetensors"))
    if safetensors_files:
        return safetensors_files
    if (folder / PICKLE_INDEX).is_file():
        pickled = _shards_from_index(folder, PICKLE_INDEX)
    else:
        pickled = sorted(folder.glob("*.bin"))
    if not pickled:
        raise CheckpointError(f"{folder} holds no weights (*.safetensors or *.bin)")
    if not allow_pickle:
        raise CheckpointError(
            f"{folder} holds only pickled weights ({', '.join(path.name for path in pickled)}). Pickle files can run "
            "code when loaded; pass --allow-pickle to read them anyway (with torch.load(weights_only=True))."
        )
    return pickled


def _load_pickled(path: Path) -> dict[str, torch.Tensor]:
    state_dict = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    if not isinstance(state_dict, dict):
        raise CheckpointError(f"{path} does not hold a state dict (got {type(state_dict).__name__})")
    return state_dict


def read_tensor_infos(path: Path) -> list[TensorInfo]:
    """Name, shape and dtype of every tensor of one weight file, without reading safetensors data."""
    if path.suffix == ".safetensors":
        with safe_open(path, framework="pt") as handle:
            infos = []
            for name in handle.keys():
                view = handle.get_slice(name)
                infos.append(TensorInfo(name, tuple(view.get_shape()), _SAFETENSORS_DTYPES[view.get_dtype()], path))
            return infos
    return [TensorInfo(name, tuple(t.shape), t.dtype, path) for name, t in _load_pickled(path).items()]


def iter_tensors(path: Path) -> Iterator[tuple[str, torch.Tensor]]:
    """Yields `(name, tensor)` for every tensor of one weight file, one at a time for safetensors."""
    if path.suffix == ".safetensors":
        with safe_open(path, framework="pt") as handle:
            for name in handle.keys():
                yield name, handle.get_tensor(name)
    else:
        yield from _load_pickled(path).items()


@dataclass
class WeightFolder:
    """The tensors of a weight folder, indexed by name; `get` reads one tensor (a pickled shard is kept once read)."""

    folder: Path
    files: list[Path]
    infos: dict[str, TensorInfo] = field(default_factory=dict)
    _pickled_cache: tuple[Path, dict[str, torch.Tensor]] | None = field(default=None, repr=False)

    @classmethod
    def open(cls, folder: Path, allow_pickle: bool) -> WeightFolder:
        files = find_weight_files(folder, allow_pickle)
        infos: dict[str, TensorInfo] = {}
        for path in files:
            for info in read_tensor_infos(path):
                if info.name in infos:
                    raise CheckpointError(f"tensor {info.name} is in both {infos[info.name].file} and {path}")
                infos[info.name] = info
        logger.info("%s: %d tensors in %d file(s)", folder, len(infos), len(files))
        return cls(folder, files, infos)

    def get(self, name: str) -> torch.Tensor:
        path = self.infos[name].file
        if path.suffix == ".safetensors":
            with safe_open(path, framework="pt") as handle:
                return handle.get_tensor(name)
        if self._pickled_cache is None or self._pickled_cache[0] != path:
            self._pickled_cache = (path, _load_pickled(path))
        return self._pickled_cache[1][name]


def read_json(path: Path) -> dict:
    """A JSON object from `path`, with a `CheckpointError` naming the file if it is missing or malformed."""
    try:
        value = json.loads(path.read_text())
    except FileNotFoundError as error:
        raise CheckpointError(f"{path} is missing") from error
    except json.JSONDecodeError as error:
        raise CheckpointError(f"{path} is not valid JSON: {error}") from error
    if not isinstance(value, dict):
        raise CheckpointError(f"{path} does not hold a JSON object")
    return value


__all__ = [
    "CheckpointError",
    "TensorInfo",
    "WeightFolder",
    "find_weight_files",
    "iter_tensors",
    "read_json",
    "read_tensor_infos",
]
