#!/usr/bin/env bash
# Set up the project's virtual environment at .venv (idempotent).
#
#   scripts/setup.sh          engine + client (what `ditserve serve` and `ditserve demo` need)
#   scripts/setup.sh --test   the same plus the test tools, and the Node.js client
#                             (scripts/gen_node_stubs.sh) when npm is on PATH
#
# torch is installed first, pinned, and constrained for every later step, so
# no dependency can pull a different (multi-GB CUDA) torch build.
set -euo pipefail

cd "$(dirname "$0")/.."
TORCH_VERSION="2.13.0"
EXTRAS="engine"
if [[ "${1:-}" == "--test" ]]; then
  EXTRAS="engine,test"
fi

PYTHON="${PYTHON:-python3}"
if [[ ! -x .venv/bin/python ]]; then
  "$PYTHON" -m venv .venv
fi
PIP=(.venv/bin/python -m pip --disable-pip-version-check --quiet)

"${PIP[@]}" install --upgrade pip
if ! .venv/bin/python -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION')" 2>/dev/null; then
  echo "installing torch $TORCH_VERSION ..." >&2
  "${PIP[@]}" install "torch==$TORCH_VERSION"
fi
CONSTRAINTS="$(mktemp)"
trap 'rm -f "$CONSTRAINTS"' EXIT
echo "torch==$TORCH_VERSION" > "$CONSTRAINTS"
echo "installing ditserve[$EXTRAS] ..." >&2
"${PIP[@]}" install --constraint "$CONSTRAINTS" --editable ".[$EXTRAS]"

if [[ "$EXTRAS" == *test* ]]; then
  if command -v npm >/dev/null; then
    echo "building the Node.js client ..." >&2
    scripts/gen_node_stubs.sh
  else
    echo "npm not found: the Node.js client is not built" >&2
  fi
fi
