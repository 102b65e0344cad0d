#!/usr/bin/env bash
# Builds plugin.wasm from app.py: installs componentize-py into .venv when
# it is missing, then builds the component of hookgate's `transformer`
# world (wit/plugin.wit). Needs python3 (3.10 or later) with venv.
set -euo pipefail
cd "$(dirname "$0")"

COMPONENTIZE_PY_VERSION=0.25.1
if [ -n "${COMPONENTIZE_PY:-}" ]; then
  "$COMPONENTIZE_PY" -d wit -w transformer componentize hookgate_plugin -o plugin.wasm
  echo "built $(pwd)/plugin.wasm"
  exit 0
fi
if [ ! -x .venv/bin/componentize-py ] ||
   [ "$(.venv/bin/componentize-py --version)" != "componentize-py $COMPONENTIZE_PY_VERSION" ]; then
  python3 -m venv .venv
  .venv/bin/pip install --quiet "componentize-py==$COMPONENTIZE_PY_VERSION"
fi
.venv/bin/componentize-py -d wit -w transformer componentize hookgate_plugin -o plugin.wasm
echo "built $(pwd)/plugin.wasm"
