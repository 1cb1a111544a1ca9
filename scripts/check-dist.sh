#!/usr/bin/env bash
# Build the sdist and the wheel as a release would, check them, and install the wheel into a fresh
# virtualenv: the command runs, and every file of the package (modules, server/static, recipes, rules,
# vocabularies, prices, the sample picture) is inside the wheel and the sdist. Everything happens in a
# temporary folder, removed at the end; the work tree is left as it was (no dist/, build/, *.egg-info).
#   usage: scripts/check-dist.sh          (PYTHON=python3.x to choose the interpreter; CI runs it)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || command -v "$PY" >/dev/null 2>&1 || PY=python3
# Both venvs are made without pip and filled by $PY's own pip (`pip --python`, pip >= 22.3): no ensurepip runs.
pip=("$PY" -m pip -q --disable-pip-version-check)
start=$(date +%s)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/check-dist.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# The files a clean clone has (tracked, plus new files git does not ignore): a build from them cannot pick
# up what only this checkout holds (the vendored web files, build/, stale egg-info).
mkdir "$tmp/tree"
git ls-files -z --cached --others --exclude-standard \
  | xargs -0 bash -c 'for f; do if [ -f "$f" ]; then printf "%s\0" "$f"; fi; done' _ \
  | tar --null -T - -cf - | tar -xf - -C "$tmp/tree"
# What the package must carry: every file under src/ except dotfiles (.gitignore), which are no package data.
(cd "$tmp/tree/src" && find fastvlm_gemini_hybrid -type f ! -name '.*' ! -path '*/__pycache__/*' | sort) >"$tmp/expected.txt"

echo "check-dist [$(($(date +%s) - start)) s]: build and twine in a throwaway venv" >&2
"$PY" -m venv --without-pip "$tmp/tools"
# pyproject's build-system.requires go into this venv too: `build --no-isolation` checks they are all there
# (it says which one is missing) and saves two more virtualenvs.
"${pip[@]}" --python "$tmp/tools/bin/python" install --no-compile build twine "setuptools>=69" wheel
"$tmp/tools/bin/python" -m build --no-isolation --outdir "$tmp/dist" "$tmp/tree" >"$tmp/build.log" 2>&1 \
  || { cat "$tmp/build.log" >&2; exit 1; }
"$tmp/tools/bin/python" -m twine check --strict "$tmp/dist"/*

wheel=$(ls "$tmp/dist"/*.whl)
sdist=$(ls "$tmp/dist"/*.tar.gz)
echo "check-dist [$(($(date +%s) - start)) s]: every package file in $(basename "$wheel") and $(basename "$sdist")" >&2
"$tmp/tools/bin/python" - "$wheel" "$sdist" "$tmp/expected.txt" <<'EOF'
import sys, tarfile, zipfile

wheel, sdist, expected_file = sys.argv[1:]
expected = open(expected_file).read().splitlines()
in_wheel = set(zipfile.ZipFile(wheel).namelist())
with tarfile.open(sdist) as tar:
    root = tar.getnames()[0].split("/")[0]
    in_sdist = {name.removeprefix(f"{root}/src/") for name in tar.getnames()}
missing = [f"{name} (wheel)" for name in expected if name not in in_wheel]
missing += [f"{name} (sdist)" for name in expected if name not in in_sdist]
if missing:
    sys.exit("check-dist: missing from the distribution (pyproject.toml's package-data):\n  " + "\n  ".join(missing))
print(f"check-dist: {len(expected)} files in both", file=sys.stderr)
EOF

echo "check-dist [$(($(date +%s) - start)) s]: install the wheel (with its core dependencies) into a fresh venv" >&2
"$PY" -m venv --without-pip "$tmp/venv"
"${pip[@]}" --python "$tmp/venv/bin/python" install --no-compile "$wheel"
cd "$tmp"  # nothing of the checkout on sys.path: the installed wheel answers
export FASTVLM_HYBRID_HOME="$tmp/home" HF_HUB_OFFLINE=1
"$tmp/venv/bin/fastvlm-hybrid" --help >/dev/null
"$tmp/venv/bin/fastvlm-hybrid" route "Describe this image" --json >"$tmp/route.json"
"$tmp/venv/bin/python" - "$tmp/expected.txt" "$tmp/route.json" <<'EOF'
import json, sys
from importlib.resources import files

import fastvlm_gemini_hybrid

expected_file, route_file = sys.argv[1:]
package = files("fastvlm_gemini_hybrid")
assert "site-packages" in str(package), f"imported from {package}, not from the installed wheel"
missing = [name for name in open(expected_file).read().splitlines()
           if not package.joinpath(name.removeprefix("fastvlm_gemini_hybrid/")).is_file()]
assert not missing, f"not installed: {missing}"
route = json.load(open(route_file))
assert route["backends"] and route["task"], route
print(f"check-dist: fastvlm-hybrid {fastvlm_gemini_hybrid.__version__} installed from the wheel; "
      f"route -> {route['backends']}", file=sys.stderr)
EOF
echo "check-dist: ok in $(($(date +%s) - start)) s" >&2
