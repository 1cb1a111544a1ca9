"""The package's modules import each other without circles (function-level and TYPE_CHECKING imports
count too): a circle is where layers stop meaning anything. docs/ARCHITECTURE.md draws the layers."""

from __future__ import annotations

import ast
from pathlib import Path

import fastvlm_gemini_hybrid

ROOT = Path(fastvlm_gemini_hybrid.__file__).parent
PACKAGE = "fastvlm_gemini_hybrid"


def module_name(path: Path) -> str:
    parts = [PACKAGE, *path.relative_to(ROOT).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """Package modules `path` imports anywhere in its body (a package's __init__ is not counted as a hop)."""
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                for candidate in (f"{base}.{alias.name}", base):
                    if candidate in modules:
                        found.add(candidate)
                        break
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in modules)
    return {m for m in found if m != here and not m.endswith("__init__")}


def test_no_import_circles() -> None:
    files = {module_name(p): p for p in ROOT.rglob("*.py")}
    modules = set(files)
    packages = {module_name(p) for p in ROOT.rglob("__init__.py")}
    graph = {m: {t for t in imports_of(p, modules) if t not in packages} for m, p in files.items() if m not in packages}
    circles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                circles.append([*path[path.index(nxt):], nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
    assert circles == [], "\n".join(" -> ".join(c) for c in circles)


def test_agents_import_nothing_from_cli_or_server() -> None:
    """Layering: `cli` and `server` call the agents registry, never the other way round (the registry used
    to rebuild the CLI parser to run the medical and surveillance commands)."""
    files = {module_name(p): p for p in ROOT.rglob("*.py")}
    modules = set(files)
    upward = (f"{PACKAGE}.cli", f"{PACKAGE}.server")

    def is_upward(module: str) -> bool:
        return any(module == u or module.startswith(u + ".") for u in upward)

    offenders = {
        name: sorted(m for m in imports_of(path, modules) if is_upward(m))
        for name, path in files.items() if name == f"{PACKAGE}.agents" or name.startswith(f"{PACKAGE}.agents.")
    }
    assert {k: v for k, v in offenders.items() if v} == {}
    # the walk sees function-level imports: the CLI's lazy import of the registry is found
    assert f"{PACKAGE}.agents.registry" in imports_of(ROOT / "cli" / "agents_cmd.py", modules)
