"""Where the tests find the vLLM environment (scripts/build_vllm_env.sh builds it): `MQT_LLAVA_VLLM_PYTHON`, else
`.venv-vllm/bin/python` in the checkout. Without one the vLLM tests skip, unless `MQT_LLAVA_REQUIRE_VLLM=1` (set by
`.ci/run`, which builds it) makes its absence a failure."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import REPO_ROOT


def vllm_python() -> str:
    """The vLLM environment's interpreter; skips the calling test (fails it under MQT_LLAVA_REQUIRE_VLLM=1)."""
    python = Path(os.environ.get("MQT_LLAVA_VLLM_PYTHON") or REPO_ROOT / ".venv-vllm" / "bin" / "python")
    if python.is_file():
        return str(python)
    reason = f"no vLLM environment at {python}: build it with `scripts/build_vllm_env.sh` (docs/serving.md)"
    if os.environ.get("MQT_LLAVA_REQUIRE_VLLM") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


def vllm_env(tmp_path: Path) -> dict[str, str]:
    """Environment of the vLLM subprocesses: a 1 GiB KV cache, offline Hub, caches inside the test sandbox."""
    return {
        **os.environ,
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "HF_HUB_OFFLINE": "1",
        "VLLM_CACHE_ROOT": str(tmp_path / "vllm_cache"),
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
    }
