from __future__ import annotations

import pytest

from fastvlm_gemini_hybrid._optional import require
from fastvlm_gemini_hybrid.errors import MissingDependencyError


def test_missing_extra_names_the_exact_pip_command() -> None:
    with pytest.raises(MissingDependencyError) as info:
        require("surely_not_installed_pkg.sub", "gemini", "the Gemini backend")
    assert str(info.value) == (
        "the Gemini backend needs the 'gemini' extra: pip install 'fastvlm-gemini-hybrid[gemini]'"
    )
    assert info.value.exit_code == 2


def test_present_module_is_returned() -> None:
    assert require("json", "dev").dumps([1]) == "[1]"


def test_cli_reports_a_missing_extra_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], image_file: object
) -> None:
    """A command whose extra is absent fails with exit 2 and the pip line, not a traceback."""
    import sys

    # None in sys.modules makes `import google.genai` fail exactly as if it were not installed.
    for name in ("google.genai", "google.genai.types", "google.genai.errors"):
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setenv("GEMINI_API_KEY", "k")
    from fastvlm_gemini_hybrid.cli import main

    code = main(["ask", "describe the sunset", "-a", str(image_file), "--mode", "cloud-only"])
    err = capsys.readouterr().err
    assert code == 2
    assert "pip install 'fastvlm-gemini-hybrid[gemini]'" in err and len(err.strip().splitlines()) == 1
