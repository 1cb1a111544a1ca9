"""Settings files (config.py `load_settings(config_file=...)`, `read_config_file`) with arbitrary contents.

Property: whatever a `config.toml`, `config.yaml` or `config.yml` holds — any text, YAML's own
constructs (tags, anchors, aliases, several documents, dates, merge keys), TOML of any shape, or the
real setting names with values of any type — loading gives a `Settings` or raises
`ConfigurationError` (one line naming the file or the setting), never another exception.

Files are mostly written as UTF-8; `test_config_bytes_give_settings_or_configuration_error` writes any
bytes at all (a file that is not UTF-8 is a `ConfigurationError` too).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import event, given, settings
from hypothesis import strategies as st

from fastvlm_gemini_hybrid.config import Settings, load_settings
from fastvlm_gemini_hybrid.errors import ConfigurationError

from .conftest import JSON_VALUES, WRONG_TYPES, examples

SUFFIXES = st.sampled_from([".toml", ".yaml", ".yml"])
SETTING_NAMES = sorted(Settings.model_fields)
KEYS = st.one_of(
    st.sampled_from(SETTING_NAMES),
    st.sampled_from(SETTING_NAMES).map(lambda name: name.replace("_", "-")),  # the file may spell keys with dashes
    st.sampled_from(["GEMINI_API_KEY", "FASTVLM_HYBRID_HOME", "config_file", "model_config", "__class__", ""]),
    st.text(max_size=12),
)
# Values a setting plausibly gets, next to junk of every type.
PLAUSIBLE = st.one_of(
    st.sampled_from(["auto", "local-only", "cpu", "int8", "redact", "local", "allow", "http://127.0.0.1:8080/v1",
                     "k1,k2", "a.com,*.b.org", "[1, 2]", "~/x", "", "0", "-1", "1e9", "true"]),
    st.integers(-5, 10**9), st.floats(-1, 1e9), st.booleans(), st.lists(st.text(max_size=8), max_size=3),
)
SETTING_DICTS = st.dictionaries(KEYS, PLAUSIBLE | WRONG_TYPES | JSON_VALUES, max_size=6)
YAML_SNIPPETS = st.sampled_from([
    "!!python/object/apply:os.system ['true']", "a: &x [*x]", "api_keys: &k [*k]", "capabilities: &c {x: *c}",
    "--- \n---\n", "---\nthreads: 1\n---\nthreads: 2\n", "!!binary aGVsbG8=", "? [a, b]\n: 1", "? {a: 1}\n: 2",
    "home: 2001-12-14", "cache_ttl_s: 2001-12-14t21:59:43.10-05:00", "threads: ~", "threads: .inf", "threads: 0x1F",
    "threads: 0o17", "threads: 1_000", "<<: {threads: 2}", "threads: !!float '1'", "threads: !!str 3",
    "%YAML 1.1\n---\n",
    "\ufeffthreads: 2", "threads: 1\nthreads: 2", "\t\tthreads: 1", "user: \"\\ud800\"", "key: !!set {a, b}",
    "capabilities: {fastvlm: {video: true}}", "default_mode: local_only", "max_upload_bytes: 1e400",
    "[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]", "{" * 40 + "}" * 40,
])
TOML_SNIPPETS = st.sampled_from([
    "threads = 1\nthreads = 2", "[capabilities.fastvlm]\nvideo = true", "[[capabilities]]\na = 1", "a.b.c = 1",
    "home = 1979-05-27T07:32:00Z", "threads = inf", "threads = nan", "threads = 0x1F", "api_keys = ['a', 1]",
    "x = \"\"\"\nmulti\"\"\"", "'quoted key' = 1", "\ufeffthreads = 1", "threads = 99999999999999999999",
    "default_mode = \"local_only\"", "[a]\n[a]", "= 1", "capabilities = {fastvlm = 1}",
])


def yaml_text(data: dict[Any, Any]) -> str:
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


def toml_text(data: dict[str, Any]) -> str:
    """`key = value` lines, the value written as JSON: often valid TOML (strings, numbers, arrays), often not."""
    return "\n".join(f"{json.dumps(key)} = {json.dumps(value)}" for key, value in data.items())


CONFIG_TEXTS = st.one_of(
    st.text(max_size=200),
    SETTING_DICTS.map(yaml_text),
    SETTING_DICTS.map(toml_text),
    YAML_SNIPPETS,
    TOML_SNIPPETS,
    st.lists(YAML_SNIPPETS | TOML_SNIPPETS | SETTING_DICTS.map(yaml_text), min_size=2, max_size=3).map("\n".join),
)


@pytest.fixture(scope="module")
def config_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("config")


def load(config_dir: Path, suffix: str, content: bytes) -> Settings | None:
    """The property: Settings, or ConfigurationError (None), for `content` as a config file with `suffix`."""
    path = config_dir / f"config{suffix}"
    path.write_bytes(content)
    try:
        result = load_settings(config_file=path)
    except ConfigurationError as exc:
        assert str(exc), "a ConfigurationError must say what is wrong"
        return None
    assert isinstance(result, Settings)
    return result


@settings(max_examples=examples(150))
@given(text=CONFIG_TEXTS, suffix=SUFFIXES)
def test_config_text_gives_settings_or_configuration_error(config_dir: Path, text: str, suffix: str) -> None:
    result = load(config_dir, suffix, text.encode("utf-8"))  # asserts the property itself
    assert result is None or isinstance(result, Settings)
    event("Settings" if result is not None else "ConfigurationError")


@settings(max_examples=examples(100))
@given(data=SETTING_DICTS, suffix=SUFFIXES)
def test_real_setting_names_with_any_values(config_dir: Path, data: dict[str, Any], suffix: str) -> None:
    text = toml_text(data) if suffix == ".toml" else yaml_text(data)
    result = load(config_dir, suffix, text.encode("utf-8"))
    assert result is None or isinstance(result, Settings)
    event("Settings" if result is not None else "ConfigurationError")


@settings(max_examples=examples(60))
@given(content=st.binary(max_size=200) | CONFIG_TEXTS.map(lambda t: t.encode("utf-8")).flatmap(
    lambda b: st.binary(max_size=4).map(lambda junk: b + junk)), suffix=SUFFIXES)
def test_config_bytes_give_settings_or_configuration_error(config_dir: Path, content: bytes, suffix: str) -> None:
    result = load(config_dir, suffix, content)
    assert result is None or isinstance(result, Settings)
    event("Settings" if result is not None else "ConfigurationError")


# --------------------------------------------------------------------------- crashes found before, now typed errors


@pytest.mark.parametrize("suffix", [".toml", ".yaml"])
def test_config_file_not_utf8(config_dir: Path, suffix: str) -> None:
    assert load(config_dir, suffix, b"threads: \xff\n") is None  # a ConfigurationError, not UnicodeDecodeError
