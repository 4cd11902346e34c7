#!/usr/bin/env bash
# Idempotent: run the test suite with every dependency at the floor pyproject.toml declares.
# Makes .venv-min, installs the CPU build of torch first (pinned at its declared floor; refuses a
# CUDA build, so nothing multi-GB is downloaded), then this project with its dev, ray and bench
# extras, every direct dependency constrained to `name==floor`. The constraints are derived from
# pyproject.toml at run time, so this script never drifts from the declared floors. Transitive
# dependencies resolve as pip picks them (lowest-direct). A change to pyproject.toml or to this
# script rebuilds the venv from scratch, so no package from older floors is left behind.
#   bash scripts/test-min-versions.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=.venv-min
EXTRAS=dev,ray,bench

stamp=$VENV/.smec-min-$(cat pyproject.toml scripts/test-min-versions.sh | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -c 'import tomllib' 2>/dev/null || "$VENV/bin/python" -m pip install -q tomli
  # name==floor for every dependency of the project and of the extras installed (from pyproject).
  "$VENV/bin/python" - "$EXTRAS" > "$VENV/floors.txt" <<'PY'
import sys
try:
    import tomllib
except ModuleNotFoundError:
    import tomli as tomllib
from pip._vendor.packaging.requirements import Requirement
from pip._vendor.packaging.utils import canonicalize_name

project = tomllib.load(open("pyproject.toml", "rb"))["project"]
reqs = list(project["dependencies"])
for extra in sys.argv[1].split(","):
    reqs += project["optional-dependencies"][extra]
floors = {}
for text in reqs:
    req = Requirement(text)
    if req.marker is not None and not req.marker.evaluate({"extra": ""}):
        continue
    lows = [s.version for s in req.specifier if s.operator in (">=", "==", "~=")]
    if len(lows) != 1:
        sys.exit(f"pyproject.toml: {text!r} must declare exactly one floor (>=X)")
    name = canonicalize_name(req.name)
    if floors.get(name, lows[0]) != lows[0]:
        sys.exit(f"pyproject.toml: {name} has two different floors")
    floors[name] = lows[0]
for name, floor in sorted(floors.items()):
    print(f"{name}=={floor}")
PY
  torch_pin=$(grep '^torch==' "$VENV/floors.txt")
  # Never install a CUDA build: the declared torch floor must resolve to a CPU wheel here.
  "$VENV/bin/python" -m pip install -q --dry-run --no-deps --ignore-installed --report "$VENV/torch.json" "$torch_pin"
  "$VENV/bin/python" - "$VENV/torch.json" "$torch_pin" <<'PY'
import json, sys
item = json.load(open(sys.argv[1]))["install"][0]
deps = item["metadata"].get("requires_dist") or []
if any(d.lower().startswith("nvidia-") for d in deps):
    sys.exit(f"{sys.argv[2]} resolves to a CUDA build ({item['download_info']['url'].rsplit('/', 1)[-1]}); "
             "only a CPU build can be tested here: raise torch's floor to a version with a CPU wheel")
PY
  "$VENV/bin/python" -m pip install -q --only-binary=:all: "$torch_pin"
  "$VENV/bin/python" -m pip install -q --only-binary=:all: -c "$VENV/floors.txt" -e ".[$EXTRAS]"
  "$VENV/bin/python" -m pip check
  "$VENV/bin/python" -m pip freeze --exclude-editable > "$VENV/freeze.txt"
  touch "$stamp"
fi
echo "dependencies at their floors ($VENV/floors.txt; everything installed: $VENV/freeze.txt)"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec "$VENV/bin/python" -m pytest "$@"
