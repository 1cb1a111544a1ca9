#!/usr/bin/env bash
# Install what the browser tests need: Debian's chromium (never `playwright install`, which downloads
# from outside), the `browser` extra, and the in-browser inference files vendored from npm.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v chromium >/dev/null 2>&1; then
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium
fi
VENV=${VENV:-.venv}
"$VENV/bin/python" -m pip install -q -c constraints.txt -e '.[browser]'
if command -v npm >/dev/null 2>&1; then
  # --ignore-scripts: onnxruntime-node's post-install would fetch binaries from outside; the UI needs none.
  ONNXRUNTIME_NODE_INSTALL=skip npm ci --ignore-scripts --no-audit --no-fund
  "$VENV/bin/python" -m fastvlm_gemini_hybrid.server.vendor_web node_modules
fi
