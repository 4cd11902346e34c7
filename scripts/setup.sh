#!/usr/bin/env bash
# Idempotent setup: a .venv with the CPU build of torch (pinned, installed first so nothing pulls
# the multi-GB CUDA build) and this project with its dev, ray (the tests run Ray Data locally) and
# bench extras. Re-runs skip work already done.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH_VERSION=2.13.0
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.smec-setup-$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q "torch==${TORCH_VERSION}"
  .venv/bin/python -m pip install -q -e ".[dev,ray,bench]"
  rm -f .venv/.smec-setup-*
  touch "$stamp"
fi
