#!/usr/bin/env bash
# The whole GPU benchmark: install the carried wheels, run every part of scripts/bench_gpu.py in its own
# process (each under 8 minutes on one H100/H200), then print the collected tables.
#
#   scripts/bench_gpu.sh [--cpu] [--wheels DIR] [--results FILE] [--parts "eager compile ..."] [-- BENCH ARGS]
#
# --wheels DIR   wheels to install first (default: wheels/ when it exists): diffusers, torchao, cache-dit and
#                what they and the engine need (huggingface-hub, safetensors, regex, grpcio, protobuf,
#                prometheus-client, imageio, ...). They install from DIR only (no index), so the
#                preinstalled torch stays as it is. Build DIR on a machine with internet, e.g.
#                  pip download -d wheels --python-version 3.12 --only-binary=:all: --no-deps \
#                      diffusers torchao cache-dit ...
# --results FILE where the parts append their rows (default: bench_gpu_results.jsonl; removed first)
# PYTHON (environment): the interpreter (default: .venv/bin/python when there is one, else python3).
# --cpu          a check of the whole run on any machine: a small model (--tiny), the eager compile backend,
#                the GPU-only parts skipped
# --parts LIST   the parts to run (default: all of scripts/bench_gpu.py's PARTS)
# Arguments after -- go to every part (e.g. -- --repeats 5).
#
# A part that fails or runs past its time limit is reported and the run goes on with the next.
set -uo pipefail

cd "$(dirname "$0")/.."
python=${PYTHON:-$( [[ -x .venv/bin/python ]] && echo .venv/bin/python || echo python3 )}
wheels=""
results=bench_gpu_results.jsonl
cpu=0
parts=""
limit_s=480
extra=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --cpu) cpu=1 ;;
    --wheels) wheels=$2; shift ;;
    --results) results=$2; shift ;;
    --parts) parts=$2; shift ;;
    --) shift; extra=("$@"); break ;;
    *) echo "unknown argument $1 (see the header of $0)" >&2; exit 2 ;;
  esac
  shift
done
[[ -z "$wheels" && -d wheels ]] && wheels=wheels

if [[ -n "$wheels" ]]; then
  shopt -s nullglob
  carried=("$wheels"/*.whl)
  if [[ ${#carried[@]} -gt 0 ]]; then
    echo "installing ${#carried[@]} wheels from $wheels" >&2
    "$python" -m pip install --quiet --no-index --find-links "$wheels" "${carried[@]}" \
      || "$python" -m pip install --quiet --no-deps "${carried[@]}" \
      || { echo "installing the wheels failed" >&2; exit 1; }
  fi
fi

if [[ -z "$parts" ]]; then
  parts=$("$python" -c "import sys; sys.path.insert(0, 'scripts'); import bench_gpu; print(' '.join(bench_gpu.PARTS))") \
    || { echo "scripts/bench_gpu.py does not import" >&2; exit 1; }
fi
if [[ $cpu == 1 ]]; then
  gpu_only=$("$python" -c "import sys; sys.path.insert(0, 'scripts'); import bench_gpu; print(' '.join(bench_gpu.GPU_ONLY))")
  extra=(--tiny --compile-backend eager "${extra[@]}")  # inductor on a CPU takes minutes per graph
  limit_s=1800  # a shared CPU is slow even with the small model
fi

rm -f "$results"
failed=0
for part in $parts; do
  if [[ $cpu == 1 && " $gpu_only " == *" $part "* ]]; then
    echo "# $part: needs a GPU, skipped (--cpu)"
    continue
  fi
  started=$(date +%s)
  timeout "$limit_s" "$python" scripts/bench_gpu.py --variants "$part" --results "$results" "${extra[@]}"
  status=$?
  if [[ $status != 0 ]]; then
    echo "# $part: FAILED (exit status $status after $(( $(date +%s) - started )) s)"
    failed=1
  fi
done

echo
echo "## results ($results)"
echo
[[ -s "$results" ]] && "$python" scripts/bench_gpu.py --table "$results"
exit $failed
