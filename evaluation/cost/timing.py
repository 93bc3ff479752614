"""Wall-clock, peak-memory and KV-cache probes for CPU benchmarks."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import re
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

from torch import nn
from transformers.cache_utils import Cache

__all__ = ["Clocks", "SectionTimer", "Stats", "kv_cache_bytes", "peak_memory_during"]

logger = logging.getLogger(__name__)

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


class Clocks(NamedTuple):
    """A reading of wall-clock time and of the CPU time this process used, in seconds.

    CPU time does not advance while other processes hold the cores, so on a shared machine it shows the work done
    where wall-clock time also shows the waiting. (With several threads it sums over them.)
    """

    wall: float
    cpu: float

    @classmethod
    def now(cls) -> Clocks:
        return cls(time.perf_counter(), time.process_time())

    def __sub__(self, other: Clocks) -> Clocks:
        return Clocks(self.wall - other.wall, self.cpu - other.cpu)


@dataclass(frozen=True)
class Stats:
    """Summary of repeated timings, in seconds."""

    median: float
    min: float
    max: float
    runs: int

    @classmethod
    def of(cls, samples: list[float]) -> Stats:
        if not samples:
            raise ValueError("no samples to summarise")
        return cls(statistics.median(samples), min(samples), max(samples), len(samples))

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


class SectionTimer:
    """Time spent between entering `first` and leaving `last` during each forward call of the model they sit in.

    Used as a context manager around one call, to split a model's first forward into image encoding (vision tower
    through projector) and the rest, inside that same call. `elapsed` holds one `Clocks` per section run.
    """

    def __init__(self, first: nn.Module, last: nn.Module):
        self.elapsed: list[Clocks] = []
        self._start: Clocks | None = None
        self._handles = [
            first.register_forward_pre_hook(self._enter),
            last.register_forward_hook(self._leave),
        ]

    def _enter(self, *_: Any) -> None:
        self._start = Clocks.now()

    def _leave(self, *_: Any) -> None:
        if self._start is not None:
            self.elapsed.append(Clocks.now() - self._start)
            self._start = None

    def total(self) -> Clocks:
        return Clocks(sum(c.wall for c in self.elapsed), sum(c.cpu for c in self.elapsed))

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()

    def __enter__(self) -> SectionTimer:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def kv_cache_bytes(cache: Cache) -> int:
    """Bytes held by the keys and values of a transformers cache."""
    return sum(layer.keys.nbytes + layer.values.nbytes for layer in cache.layers if layer.keys is not None)


def _status_kib(field: str) -> int:
    return int(re.search(rf"^{field}:\s+(\d+) kB", _STATUS.read_text(), re.MULTILINE).group(1))


def _release_free_heap() -> None:
    """Returns freed heap pages to the OS (glibc keeps them otherwise), so resident memory reflects live data."""
    libc_name = ctypes.util.find_library("c")
    if libc_name:
        libc = ctypes.CDLL(libc_name)
        if hasattr(libc, "malloc_trim"):
            libc.malloc_trim(0)


def peak_memory_during(fn: Callable[[], Any]) -> tuple[Any, int | None]:
    """Runs `fn()`; returns its output and the peak resident memory it added above the resident memory before it, in
    bytes (Linux: the kernel's high-water mark, reset through /proc/self/clear_refs). None where that is unavailable.
    """
    try:
        _release_free_heap()
        _CLEAR_REFS.write_text("5")
        before = _status_kib("VmRSS")
    except (OSError, AttributeError) as error:
        logger.warning("peak memory cannot be measured here (%s)", error)
        return fn(), None
    output = fn()
    return output, (_status_kib("VmHWM") - before) * 1024
