"""Static checks of the Dockerfile (no Docker needed); deploy/docker-smoke.sh tests a built image."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    lines: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        if raw.lstrip().startswith("#") or not raw.strip():
            continue
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1] + " "
            continue
        lines.append(pending + raw)
        pending = ""
    assert not pending, "Dockerfile ends with a continuation line"
    out = []
    for line in lines:
        word, _, rest = line.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def stages() -> list[tuple[str | None, list[tuple[str, str]]]]:
    """(stage name, its instructions) for each FROM, in order."""
    result: list[tuple[str | None, list[tuple[str, str]]]] = []
    for word, rest in instructions():
        if word == "FROM":
            parts = rest.split()
            name = parts[2] if len(parts) == 3 and parts[1].lower() == "as" else None
            result.append((name, []))
        elif result:
            result[-1][1].append((word, rest))
    return result


def global_args() -> dict[str, str]:
    args = {}
    for word, rest in instructions():
        if word == "FROM":
            break
        if word == "ARG":
            key, _, value = rest.partition("=")
            args[key] = value
    return args


def ignore_patterns() -> list[str]:
    text = (ROOT / ".dockerignore").read_text()
    return [p.strip().strip("/") for p in text.splitlines() if p.strip() and not p.strip().startswith("#")]


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out + r"\Z")


def ignored(path: str) -> bool:
    """Docker's rule: a path is left out of the context when it or one of its parents matches a pattern."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for pattern in ignore_patterns():
        negate = pattern.startswith("!")
        regex = _pattern_regex(pattern.lstrip("!"))
        if any(regex.match(p) for p in prefixes):
            excluded = not negate
    return excluded


def copy_sources(args: str) -> tuple[list[str], str]:
    """Sources and destination of a COPY (flags dropped; JSON or plain form)."""
    words = json.loads(args) if args.startswith("[") else args.split()
    words = [w for w in words if not w.startswith("--")]
    return words[:-1], words[-1]


def test_global_args_default_to_public_images():
    args = global_args()
    assert args.get("PYTHON_IMAGE") == "python:3.11-slim"
    assert args.get("NODE_IMAGE") == "node:20-slim"
    torch_index = [rest for word, rest in instructions() if word == "ARG" and rest.startswith("TORCH_INDEX_URL=")]
    assert torch_index == ["TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu"]


def test_multi_stage_with_named_build_and_web_stages():
    names = [name for name, _ in stages()]
    assert len(names) >= 3
    assert {"build", "web"} <= set(names)
    froms = [rest for word, rest in instructions() if word == "FROM"]
    assert froms[-1].split()[0] == "${PYTHON_IMAGE}"
    build_from = next(rest for rest in froms if rest.endswith(" AS build"))
    assert build_from.split()[0] == "${PYTHON_IMAGE}", "the venv must be built on the image it runs on"


def test_final_stage_runs_as_non_root_before_entrypoint():
    _, final = stages()[-1]
    words = [w for w, _ in final]
    assert "USER" in words and "ENTRYPOINT" in words
    user = next(rest for w, rest in final if w == "USER")
    assert user not in ("root", "0")
    assert words.index("USER") < words.index("ENTRYPOINT")
    assert not any(w in ("RUN", "COPY", "ADD") for w in words[words.index("USER"):]), "no root work after USER"


def test_entrypoint_is_fastvlm_hybrid_serve():
    _, final = stages()[-1]
    entry = json.loads(next(rest for w, rest in final if w == "ENTRYPOINT"))
    assert entry[:2] == ["fastvlm-hybrid", "serve"]
    assert entry[entry.index("--host") + 1] == "0.0.0.0"


def test_healthcheck_probes_healthz():
    _, final = stages()[-1]
    health = [rest for w, rest in final if w == "HEALTHCHECK"]
    assert len(health) == 1 and "/healthz" in health[0]


def test_torch_comes_from_the_cpu_index_and_stays_pinned():
    _, build = next(s for s in stages() if s[0] == "build")
    runs = [rest for w, rest in build if w == "RUN"]
    torch_run = next(r for r in runs if "torch" in r and "--index-url" in r)
    assert '"$TORCH_INDEX_URL"' in torch_run
    package_run = next(r for r in runs if ".[" in r)
    assert "-c /src/torch-pins.txt" in package_run
    assert "fastvlm_gemini_hybrid.server.vendor_web" in package_run


def test_installed_extras_exist():
    extras = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    runs = [rest for w, rest in instructions() if w == "RUN"]
    wanted = {e for r in runs for group in re.findall(r'"\.\[([^\]]+)\]"', r) for e in group.split(",")}
    assert {"local", "server"} <= wanted
    assert wanted <= extras


def test_copy_sources_exist_and_are_in_the_build_context():
    checked = 0
    for word, rest in instructions():
        if word not in ("COPY", "ADD") or "--from=" in rest:
            continue
        sources, _ = copy_sources(rest)
        for source in sources:
            assert (ROOT / source).exists(), f"COPY source {source} is not in the repository"
            assert not ignored(source), f"COPY source {source} is excluded by .dockerignore"
            checked += 1
    assert checked >= 3


def test_copy_from_names_a_stage():
    names = {name for name, _ in stages() if name}
    for word, rest in instructions():
        if word == "COPY" and "--from=" in rest:
            assert re.search(r"--from=(\S+)", rest).group(1) in names


def test_node_modules_stay_out_of_the_runtime_stage():
    _, final = stages()[-1]
    assert not any("node_modules" in rest or "--from=web" in rest for _, rest in final)


@pytest.mark.parametrize("path", [
    "src/fastvlm_gemini_hybrid/__init__.py",
    "src/fastvlm_gemini_hybrid/server/static/index.html",
    "src/fastvlm_gemini_hybrid/server/vendor_web.py",
    "pyproject.toml",
    "README.md",
    "package-lock.json",
])
def test_needed_files_are_in_the_context(path):
    assert (ROOT / path).exists()
    assert not ignored(path)


@pytest.mark.parametrize("path", [
    ".venv/bin/python",
    "node_modules/@huggingface/transformers/package.json",
    "src/fastvlm_gemini_hybrid/server/static/vendor/ort-wasm-simd-threaded.jsep.wasm",
    "src/fastvlm_gemini_hybrid/__pycache__/cli.cpython-311.pyc",
    "src/fastvlm_gemini_hybrid.egg-info/PKG-INFO",
    ".git/HEAD",
])
def test_local_artefacts_are_left_out_of_the_context(path):
    assert ignored(path)
