#!/usr/bin/env bash
# Create .venv and install the pinned requirements (idempotent: skipped when nothing changed).
# Usage: scripts/setup.sh [requirements file]   (default requirements.txt)
# A requirements file other than requirements.txt includes it (-r requirements.txt), so installing
# it also counts as installing requirements.txt: ./run.sh after ./test.sh installs nothing again.
set -euo pipefail
cd "$(dirname "$0")/.."
req="${1:-requirements.txt}"
py="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$py" -m venv .venv
fi
stamp_of() { echo ".venv/.installed-$(cat "$@" pyproject.toml | sha256sum | cut -c1-16)"; }
stamps=("$(stamp_of requirements.txt)")
[ "$req" = requirements.txt ] || stamps+=("$(stamp_of "$req" requirements.txt)")
missing=false
for stamp in "${stamps[@]}"; do [ -f "$stamp" ] || missing=true; done
if $missing; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r "$req"
  # ddcore and ddapp importable from any folder (workers, benchmarks, Ray tasks); a script run from
  # another checkout still imports that checkout's own copy first (the current folder wins)
  .venv/bin/python -m pip install -q --no-deps -e .
  touch "${stamps[@]}"
fi
