"""Writes a state dict as sharded safetensors, tensor by tensor, holding at most one shard in memory."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

INDEX_NAME = "model.safetensors.index.json"


class ShardWriter:
    """Collects tensors and writes safetensors shards of at most `max_shard_bytes`, named and indexed at `close`."""

    def __init__(self, folder: Path, max_shard_bytes: int):
        self.folder = folder
        self.max_shard_bytes = max_shard_bytes
        self.buffer: dict[str, torch.Tensor] = {}
        self.buffer_bytes = 0
        self.shards: list[tuple[Path, list[str]]] = []
        self.total_bytes = 0

    def add(self, name: str, tensor: torch.Tensor) -> None:
        size = tensor.numel() * tensor.element_size()
        if self.buffer and self.buffer_bytes + size > self.max_shard_bytes:
            self.flush()
        self.buffer[name] = tensor
        self.buffer_bytes += size
        self.total_bytes += size

    def flush(self) -> None:
        if not self.buffer:
            return
        path = self.folder / f"shard-{len(self.shards):05d}.safetensors.partial"
        save_file(self.buffer, path, metadata={"format": "pt"})
        self.shards.append((path, list(self.buffer)))
        self.buffer, self.buffer_bytes = {}, 0

    def close(self) -> list[Path]:
        """Writes the last shard, gives the shards their final names (and an index if several); returns them."""
        self.flush()
        count = len(self.shards)
        weight_map, written = {}, []
        for number, (path, names) in enumerate(self.shards, start=1):
            name = "model.safetensors" if count == 1 else f"model-{number:05d}-of-{count:05d}.safetensors"
            final = self.folder / name
            path.rename(final)
            final.chmod(0o644)  # safetensors creates files readable by their owner only
            written.append(final)
            weight_map.update(dict.fromkeys(names, final.name))
        if count > 1:
            index = {"metadata": {"total_size": self.total_bytes}, "weight_map": dict(sorted(weight_map.items()))}
            (self.folder / INDEX_NAME).write_text(json.dumps(index, indent=2) + "\n")
        return written


__all__ = ["ShardWriter", "INDEX_NAME"]
