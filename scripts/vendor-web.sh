#!/usr/bin/env bash
# Vendor what the web UI's in-browser inference needs (transformers.js + ONNX Runtime's wasm files)
# into src/fastvlm_gemini_hybrid/server/static/vendor/ (git-ignored), so the page loads them from our
# own server and never from a CDN.
#   --ignore-scripts + ONNXRUNTIME_NODE_INSTALL=skip: onnxruntime-node's post-install would download
#   native binaries from outside; the browser needs none of them.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
if ! command -v npm >/dev/null 2>&1; then
  echo "vendor-web: npm not found; install Node.js/npm (Debian: apt-get install npm)" >&2
  exit 2
fi
ONNXRUNTIME_NODE_INSTALL=skip npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2
"$PY" -m fastvlm_gemini_hybrid.server.vendor_web node_modules
