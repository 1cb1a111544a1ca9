#!/usr/bin/env bash
# The GPU suite (benchmarks/gpu_suite.py) with a hard stop at 8 minutes: JSON on stdout and in a file,
# progress on stderr. Any gpu_suite.py option passes through (e.g. --dry-run, --sections, --budget).
#
#   benchmarks/gpu_suite.sh                  # on a CUDA machine
#   GPU_SUITE_OUT=run.json benchmarks/gpu_suite.sh --sections device,latency-7b
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${PYTHON:-}" ]; then py=$PYTHON; elif [ -x .venv/bin/python ]; then py=.venv/bin/python; else py=python3; fi
out=${GPU_SUITE_OUT:-${TMPDIR:-/tmp}/gpu-suite-$(hostname -s)-$(date +%Y%m%dT%H%M%S).json}
echo "gpu-suite: JSON also goes to $out" >&2
exec timeout --kill-after=10 480 "$py" benchmarks/gpu_suite.py --out "$out" "$@"
