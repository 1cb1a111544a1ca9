"""Copy what the web UI's in-browser path needs from node_modules into `static/vendor/`.

    scripts/vendor-web.sh        # = ONNXRUNTIME_NODE_INSTALL=skip npm ci --ignore-scripts, then:
    python -m fastvlm_gemini_hybrid.server.vendor_web [NODE_MODULES]

Why a copy step: the page must load everything from our own server (no CDN), node_modules must not
be committed, and only three files are needed (about 22 MB instead of node_modules' hundreds):
transformers.js' self-contained browser build, which bundles ONNX Runtime Web's JavaScript, and ONNX
Runtime's wasm binary with its loader (the JSEP build, which serves both the WASM and the WebGPU
backends). `env.backends.onnx.wasm.wasmPaths` in browser-infer.js points ONNX Runtime at them.

`TEST_FILES` are copied too when node_modules has them (a development install: `npm ci` includes
devDependencies) and skipped quietly otherwise (the Docker image copies only transformers.js' dist):
axe-core, which the browser tests inject into each view of the page to check accessibility. The page
itself never loads them.
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
TEST_FILES = {"axe-core": ["axe.min.js"]}
INSTALL_HINT = "run scripts/vendor-web.sh (ONNXRUNTIME_NODE_INSTALL=skip npm ci --ignore-scripts, then this copy)"


def vendored_names() -> list[str]:
    return [name for names in FILES.values() for name in names]


def missing(dest: Path = VENDOR) -> list[str]:
    """Vendored files the page needs that are not in `dest` (empty once vendoring has run)."""
    return [name for name in vendored_names() if not (dest / name).is_file()]


def dev_file(name: str, dest: Path = VENDOR) -> Path | None:
    """A vendored test-only file (`axe.min.js`), or None when vendoring ran without devDependencies."""
    path = dest / name
    return path if path.is_file() else None


def vendor(node_modules: Path, dest: Path = VENDOR) -> list[Path]:
    """Copy the files; raise SystemExit with one line when node_modules lacks them.

    Returns the page's files; test-only files present in node_modules are copied as well."""
    for folder, names in FILES.items():
        for name in names:
            if not (node_modules / folder / name).is_file():
                raise SystemExit(f"missing {node_modules / folder / name}; {INSTALL_HINT}")
    dest.mkdir(parents=True, exist_ok=True)
    copied: list[Path] = []
    for folder, names in FILES.items():
        for name in names:
            shutil.copy2(node_modules / folder / name, dest / name)
            copied.append(dest / name)
    for folder, names in TEST_FILES.items():
        for name in names:
            if (node_modules / folder / name).is_file():
                shutil.copy2(node_modules / folder / name, dest / name)
    return copied


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    root = Path(args[0]) if args else Path.cwd() / "node_modules"
    for path in vendor(root):
        sys.stderr.write(f"vendored {path.name} ({path.stat().st_size / 1e6:.1f} MB)\n")
    for folder, names in TEST_FILES.items():
        for name in names:
            if (root / folder / name).is_file():
                sys.stderr.write(f"vendored {name} (tests only)\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
