"""The test suite's own layout (issue 14): one picture factory, one processor factory, no test module
importing another.

* Pictures are made in tests/synth_media.py (`picture`, `picture_file`, `picture_attachment`, `blank`,
  `encode`); only it, and the generators that draw real content, call `Image.new`.
* Processors over fake backends come from tests/fakes.py (`make_processor`, the `processor_factory`
  fixture): no second function named `make_processor`, no `HybridVLMProcessor(...)` built around an inline
  `FunctionBackend(...)`, and `HybridVLMProcessor(...)` called nowhere else but in the modules that
  BUILDS_ITS_OWN_PROCESSOR lists with their reasons (real models). That also catches FunctionBackends held
  in variables. `make_processor` takes ready `Backend` objects (a real `GeminiBackend`, a scripted
  streaming backend) as `local=`, `cloud=` and `backends=`. A folder's fixture may keep the name
  `make_processor` for its own defaults (tests/agents, tests/medical: `@pytest.fixture(name=...)`) when
  its body calls tests/fakes.py.
* A helper two test modules share lives in a conftest.py or a plain helper module, never in a
  `test_*.py` that another module imports.

The rules hold for every Python file under tests/.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]

#: Modules (relative to tests/) that may call `HybridVLMProcessor(...)` themselves besides the factory, and why.
BUILDS_ITS_OWN_PROCESSOR = {
    "local/test_processor_local.py": "the real FastVLM backend over tiny weights, built by the backend registry",
    "mlx/test_mlx_models.py": "a real MLXBackend over tiny weights",
}
#: Where `Image.new` may be called: the picture factory, and the generators that draw real content.
PICTURE_MAKERS = {"synth_media.py", "privacy/corpus.py", "privacy/holdout_corpus.py", "video/synth.py"}
#: The one module that defines `make_processor`.
PROCESSOR_FACTORY = "fakes.py"


def _relative(path: Path) -> str:
    return path.relative_to(TESTS).as_posix()


@functools.cache
def _sources() -> tuple[tuple[str, ast.Module], ...]:
    """(path relative to tests/, parsed module) of every Python file this layout governs (parsed once)."""
    found = []
    for path in sorted(TESTS.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        rel = _relative(path)
        found.append((rel, ast.parse(path.read_text(encoding="utf-8"), filename=rel)))
    return tuple(found)


def _dotted(node: ast.expr) -> str:
    """`Image.new` for Attribute(Name("Image"), "new"); "" for anything that is not a plain dotted name."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        head = _dotted(node.value)
        return f"{head}.{node.attr}" if head else ""
    return ""


def _calls(tree: ast.AST, *names: str) -> Iterator[ast.Call]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _dotted(node.func) in names:
            yield node


def image_new_calls(tree: ast.AST) -> list[int]:
    """Lines that call Pillow's `Image.new` (however the module spells it)."""
    return [call.lineno for call in _calls(tree, "Image.new", "PIL.Image.new")]


def make_processor_definitions(tree: ast.AST) -> list[int]:
    """Lines that define a function (nested or not) named `make_processor`."""
    return [node.lineno for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == "make_processor"]


def inline_fake_processors(tree: ast.AST) -> list[int]:
    """Lines of `HybridVLMProcessor(...)` calls with a `FunctionBackend(...)` built in their arguments."""
    return [call.lineno for call in _calls(tree, "HybridVLMProcessor")
            if any(True for arg in [*call.args, *(k.value for k in call.keywords)]
                   for _ in _calls(arg, "FunctionBackend"))]


def processor_constructions(tree: ast.AST) -> list[int]:
    """Lines that call `HybridVLMProcessor(...)` (or `processor.HybridVLMProcessor(...)`), whatever the arguments."""
    return [node.lineno for node in ast.walk(tree)
            if isinstance(node, ast.Call) and _dotted(node.func).rsplit(".", 1)[-1] == "HybridVLMProcessor"]


def imported_test_modules(rel: str, tree: ast.AST) -> list[str]:
    """The `test_*` modules that `rel` imports (absolutely, relatively, or as `from . import test_x`)."""
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if alias.name.rsplit(".", 1)[-1].startswith("test_")]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if module.rsplit(".", 1)[-1].startswith("test_"):
                found.append("." * node.level + module)
            found += ["." * node.level + (f"{module}." if module else "") + alias.name
                      for alias in node.names if alias.name.startswith("test_")]
    return found


def test_only_the_picture_factory_makes_pictures() -> None:
    offenders = [f"{rel}:{line}" for rel, tree in _sources() if rel not in PICTURE_MAKERS
                 for line in image_new_calls(tree)]
    assert offenders == [], (
        "make pictures with tests/synth_media.py (picture, picture_file, picture_attachment, blank, encode), "
        f"not Image.new: {offenders}"
    )


def test_make_processor_is_defined_once() -> None:
    definitions = [f"{rel}:{line}" for rel, tree in _sources() for line in make_processor_definitions(tree)]
    assert [d.split(":")[0] for d in definitions] == [PROCESSOR_FACTORY], (
        f"one make_processor, in tests/{PROCESSOR_FACTORY} (the processor_factory fixture): {definitions}"
    )
    inline = [f"{rel}:{line}" for rel, tree in _sources() for line in inline_fake_processors(tree)]
    assert inline == [], f"build processors over FunctionBackends with make_processor (tests/fakes.py): {inline}"


def test_only_the_factory_and_the_listed_modules_build_processors() -> None:
    built = {rel: lines for rel, tree in _sources() if (lines := processor_constructions(tree))}
    offenders = [f"{rel}:{line}" for rel, lines in built.items()
                 if rel != PROCESSOR_FACTORY and rel not in BUILDS_ITS_OWN_PROCESSOR for line in lines]
    assert offenders == [], (
        "build processors with make_processor (tests/fakes.py; it takes ready Backend objects as local=, cloud= "
        f"and backends=), or list a module over real models in BUILDS_ITS_OWN_PROCESSOR with why: {offenders}"
    )
    stale = sorted(BUILDS_ITS_OWN_PROCESSOR.keys() - built.keys())
    assert stale == [], f"these modules no longer build a processor: drop them from BUILDS_ITS_OWN_PROCESSOR: {stale}"


def test_no_test_module_imports_another() -> None:
    offenders = [f"{rel}: {name}" for rel, tree in _sources() for name in imported_test_modules(rel, tree)]
    assert offenders == [], (
        "move what test modules share into a conftest.py or a plain helper module (tests/synth_media.py, "
        f"tests/fakes.py): {offenders}"
    )


def test_the_checks_see_what_they_look_for() -> None:
    """The scans are not vacuous: each finds its pattern, and the allowed modules really hold it."""
    snippet = ast.parse(
        "from PIL import Image\nimport PIL.Image\nfrom .test_api import x\nfrom . import test_b\nimport server.test_c\n"
        "from server import conftest\n"
        "def f():\n    def make_processor(): pass\n    return Image.new('RGB', (1, 1)), PIL.Image.new('L', (1, 1))\n"
        "p = HybridVLMProcessor(s, backends={'fastvlm': FunctionBackend('fastvlm', 'x')})\n"
        "q = HybridVLMProcessor(s, backends=made)\n"
        "r = processor.HybridVLMProcessor(s)\n"
    )
    assert image_new_calls(snippet) == [9, 9]
    assert make_processor_definitions(snippet) == [8]
    assert inline_fake_processors(snippet) == [10]
    assert processor_constructions(snippet) == [10, 11, 12]
    assert imported_test_modules("x.py", snippet) == [".test_api", ".test_b", "server.test_c"]
    sources = dict(_sources())
    assert PICTURE_MAKERS <= sources.keys() and PROCESSOR_FACTORY in sources
    assert image_new_calls(sources["synth_media.py"]) and make_processor_definitions(sources[PROCESSOR_FACTORY])
    assert processor_constructions(sources[PROCESSOR_FACTORY])
    assert len(sources) == sum(1 for p in TESTS.rglob("*.py") if "__pycache__" not in p.parts)  # every file
