"""Copy what the web UI's in-browser path needs from node_modules into `static/vendor/`.

    ONNXRUNTIME_NODE_INSTALL=skip npm ci --ignore-scripts
    python -m fastvlm_gemini_hybrid.server.vendor_web [NODE_MODULES]

Why a copy step: the page must load everything from our own server (no CDN), node_modules must not
be committed, and only a handful of files (transformers.js and ONNX Runtime's wasm build with the
WebGPU/JSEP variant) are needed, about 30 MB instead of node_modules' hundreds.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

VENDOR = Path(__file__).parent / "static" / "vendor"
FILES = {
    "@huggingface/transformers/dist": [
        "transformers.min.js", "ort-wasm-simd-threaded.jsep.mjs", "ort-wasm-simd-threaded.jsep.wasm",
    ],
}


def vendor(node_modules: Path, dest: Path = VENDOR) -> list[Path]:
    """Copy the files; raise SystemExit with one line when node_modules lacks them."""
    dest.mkdir(parents=True, exist_ok=True)
    copied: list[Path] = []
    for folder, names in FILES.items():
        for name in names:
            src = node_modules / folder / name
            if not src.is_file():
                raise SystemExit(f"missing {src}; run: ONNXRUNTIME_NODE_INSTALL=skip npm ci --ignore-scripts")
            shutil.copy2(src, dest / name)
            copied.append(dest / name)
    return copied


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    root = Path(args[0]) if args else Path.cwd() / "node_modules"
    for path in vendor(root):
        sys.stderr.write(f"vendored {path.name} ({path.stat().st_size / 1e6:.1f} MB)\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
