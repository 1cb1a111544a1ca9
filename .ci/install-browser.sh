#!/usr/bin/env bash
# Install what the browser tests need: Debian's chromium (never `playwright install`, which downloads
# from outside), Node.js/npm for vendoring transformers.js, the `browser` extra (Playwright, ONNX
# export and ONNX Runtime), and the in-browser inference files vendored from npm. Also the DejaVu fonts,
# which the privacy evaluation pictures are drawn with (they fall back to PIL's own font without them).
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v npm >/dev/null 2>&1 || missing+=(npm)
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || missing+=(fonts-dejavu-core)
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
VENV=${VENV:-.venv}
"$VENV/bin/python" -m pip install -q -c constraints.txt -e '.[browser]'
bash scripts/headless-opencv.sh "$VENV/bin/python"  # pip puts the OCR's GUI OpenCV back: remove it again
PY="$VENV/bin/python" scripts/vendor-web.sh
