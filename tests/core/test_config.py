from __future__ import annotations

from pathlib import Path

import pytest

from fastvlm_gemini_hybrid.config import load_settings
from fastvlm_gemini_hybrid.errors import ConfigurationError
from fastvlm_gemini_hybrid.types import Mode


def test_precedence_flag_over_env_over_file_over_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text('local_model = "from-file"\ngemini_model = "file-model"\ndefault_mode = "fallback"\n')
    assert load_settings().local_model == "fastvlm-0.5b"
    s = load_settings(cfg)
    assert (s.local_model, s.gemini_model, s.default_mode) == ("from-file", "file-model", Mode.FALLBACK)
    monkeypatch.setenv("FASTVLM_HYBRID_LOCAL_MODEL", "from-env")
    s = load_settings(cfg)
    assert (s.local_model, s.gemini_model) == ("from-env", "file-model")
    assert load_settings(cfg, local_model="from-flag").local_model == "from-flag"


def test_yaml_file_found_in_home_and_well_known_key_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FASTVLM_HYBRID_HOME", str(tmp_path))
    (tmp_path / "config.yaml").write_text("confidence_threshold: 0.7\n")
    monkeypatch.setenv("GEMINI_API_KEY", "sk-secret-value")
    s = load_settings()
    assert s.confidence_threshold == 0.7
    assert s.gemini_api_key is not None and s.gemini_api_key.get_secret_value() == "sk-secret-value"
    shown = s.redacted()
    assert shown["gemini_api_key"] == "***" and "sk-secret-value" not in str(shown)


@pytest.mark.parametrize(
    ("text", "name", "match"),
    [
        ("local_model = [unclosed", "c.toml", "malformed config file"),
        ("- just\n- a list\n", "c.yaml", "mapping"),
        ("no_such_setting: 1\n", "c.yaml", "no_such_setting"),
        ("confidence_threshold: 7\n", "c.yaml", "confidence_threshold"),
    ],
)
def test_malformed_config_is_one_clear_error(tmp_path: Path, text: str, name: str, match: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigurationError, match=match):
        load_settings(path)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="not found"):
        load_settings(tmp_path / "absent.toml")
