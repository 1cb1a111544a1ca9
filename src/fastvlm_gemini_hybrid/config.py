"""Settings: flag > environment (`FASTVLM_HYBRID_*`) > config file > defaults.

The config file is TOML or YAML, found at `--config`, `$FASTVLM_HYBRID_CONFIG`, or
`$FASTVLM_HYBRID_HOME/config.{toml,yaml,yml}`. A few well-known variables are read too:
`GEMINI_API_KEY`/`GOOGLE_API_KEY` and `GOOGLE_GEMINI_BASE_URL`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from .errors import ConfigurationError
from .types import Mode

if TYPE_CHECKING:
    from pydantic.fields import FieldInfo

ENV_PREFIX = "FASTVLM_HYBRID_"


def default_home() -> Path:
    env = os.environ.get(ENV_PREFIX + "HOME")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("fastvlm-hybrid", appauthor=False))


class Settings(BaseSettings):
    """Every setting of the package. Field names map to `FASTVLM_HYBRID_<NAME>` variables."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", populate_by_name=True)

    home: Path = Field(default_factory=default_home, description="cache, audit log and models live here")
    default_mode: Mode = Mode.AUTO

    # local side
    local_model: str = Field("fastvlm-0.5b", description="catalogue name or a model directory")
    local_backend: str = Field("auto", description="auto (MLX on Apple Silicon, else PyTorch), fastvlm, mlx, openai")
    device: str = Field("auto", description="auto, cpu, cuda, mps")
    dtype: str = Field("auto", description="auto, float32, bfloat16, float16")
    threads: int | None = None
    vision_input_size: int | None = Field(
        None, description="FastVLM's vision input in pixels, a multiple of 64 (default: the checkpoint's, 1024 = 256 "
                          "image tokens; 768 = 144, 512 = 64): faster, less detail; both engines")
    local_engine: str = Field("auto", description="auto (ONNX Runtime on a CPU when installed, else PyTorch), "
                                                  "torch, onnx: what runs the fastvlm backend (models/engine.py)")
    quantize: str | None = Field(
        None, description="int8 or int4: weight-only quantised language model (fastvlm: CPU, torch's packed-weight "
                          "kernels; mlx: nn.quantize); unset: the dtype's full weights")
    vision_quantize: str | None = Field(
        None, description="int8: FastVLM's vision encoder with int8 dense convolutions, calibrated (onnx engine "
                          "only; about 0.7x its time, with a measured feature error); unset: fp32")

    # cloud side
    gemini_api_key: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices(
            "gemini_api_key", ENV_PREFIX + "GEMINI_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY"
        ),
    )
    gemini_base_url: str | None = Field(
        None, validation_alias=AliasChoices("gemini_base_url", ENV_PREFIX + "GEMINI_BASE_URL", "GOOGLE_GEMINI_BASE_URL")
    )
    gemini_model: str = "gemini-2.5-flash"
    gemini_api_version: str = "v1beta"
    gemini_timeout_s: float = 60.0
    gemini_retries: int = 2

    # OpenAI-compatible model servers (vLLM, Ollama, llama.cpp)
    openai_base_url: str | None = None
    openai_model: str | None = None
    openai_api_key: SecretStr | None = None
    openai_timeout_s: float = 120.0
    openai_trusted: bool = Field(
        False, description="treat the OpenAI-compatible server as on this machine even when its URL is not loopback"
    )

    # privacy: what the egress gate does with pictures bound off this machine (privacy/inspector.py)
    privacy_image_text: Literal["local", "redact"] = Field(
        "local", description="sensitive text in a picture: keep the picture local, or black the text out"
    )
    privacy_faces: Literal["allow", "redact", "local"] = Field(
        "allow", description="faces in a picture: send them, blur them, or keep the picture local"
    )
    privacy_video_frames: int = Field(8, ge=1, le=64, description="frames of a video inspected before it may leave")

    # routing and execution
    rules_file: Path | None = Field(None, description="YAML rules that replace or extend the defaults")
    confidence_threshold: float = Field(0.45, ge=0.0, le=1.0)
    request_timeout_s: float = Field(300.0, gt=0)
    capabilities: dict[str, dict[str, Any]] = Field(default_factory=dict)

    # cache, audit
    cache_enabled: bool = True
    cache_ttl_s: float = Field(7 * 24 * 3600.0, ge=0)
    cache_max_bytes: int = Field(256 * 1024 * 1024, ge=0, description="the disk cache's size cap; oldest rows go first")
    audit_enabled: bool = True
    log_answers: bool = Field(
        True, description="keep answers in home/answers.sqlite3 for `fastvlm-hybrid logs` (sensitive ones keep no text)"
    )
    user: str | None = Field(None, description="recorded in the audit trail")

    # server
    # NoDecode: the env value is 'k1,k2' (split by the validator), not JSON
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    max_upload_bytes: int = 50 * 1024 * 1024
    max_image_pixels: int = Field(40_000_000, description="pixels per picture, every frame of an animation counted")
    max_image_frames: int = Field(64, ge=1, description="frames an animated picture may have")
    max_tokens_limit: int = Field(4096, ge=1, description="the largest max_tokens a request may ask for")
    max_prompt_chars: int = Field(
        262_144, ge=1, description="the most prompt plus system text a request may carry (about 64k tokens)",
    )
    max_video_s: float = Field(600.0, gt=0, description="longest video the server accepts, in seconds")
    server_concurrency: int = Field(4, ge=1, description="model requests the server runs at once")
    server_queue: int = Field(64, ge=0, description="requests that may wait for a slot; beyond, the server sheds 503")
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list, description="empty = CORS off")
    keep_uploads: bool = Field(False, description="keep uploaded media under home/uploads after the request")
    keep_alive_s: float = Field(
        300.0, allow_inf_nan=False,
        description="seconds a local model stays loaded after its last request (the Ollama API's keep_alive "
                    "default); 0 = unload after each request, negative = never unload",
    )
    fetch_image_urls: bool = Field(False, description="let the server download http(s) image_url parts (off: SSRF)")
    # NoDecode: the env value is 'a.com,*.b.org' (split by the validator), not JSON
    fetch_allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="hosts image URLs may name (exact or *.suffix); empty = any public host"
    )
    fetch_timeout_s: float = Field(10.0, gt=0, description="one deadline for a whole fetch, redirects included")
    fetch_max_redirects: int = Field(3, ge=0, le=10)
    # live stream URLs for the surveillance agent (server/stream_sources.py): off (SSRF), then listed hosts only
    stream_sources: bool = Field(False, description="let POST /v1/agents/surveillance open live stream URLs")
    # NoDecode: the env value is 'cam1.lan:554,10.0.0.0/24' (split by the validator), not JSON
    stream_allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="hosts stream URLs may name: host, host:port, *.suffix, an IP or a CIDR block, optionally "
                    "scheme:// first; empty = none",
    )
    stream_max_s: float = Field(600.0, gt=0, description="longest live stream run the server allows, in seconds")

    config_file: Path | None = Field(None, exclude=True)

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [k.strip() for k in value.split(",") if k.strip()]
        return value

    @field_validator("fetch_allowed_hosts", "stream_allowed_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.lstrip().startswith("["):
            return [h.strip().lower() for h in value.split(",") if h.strip()]
        return value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.lstrip().startswith("["):
            return [o.strip() for o in value.split(",") if o.strip()]
        return value

    @field_validator("default_mode", mode="before")
    @classmethod
    def _mode(cls, value: Any) -> Any:
        return Mode.parse(value) if isinstance(value, str) else value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _FileSource(settings_cls))

    # paths derived from home
    @property
    def cache_path(self) -> Path:
        return self.home / "cache.sqlite3"

    @property
    def audit_path(self) -> Path:
        return self.home / "audit.jsonl"

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    def redacted(self) -> dict[str, Any]:
        """The effective settings as plain data, secrets replaced by '***'."""
        out: dict[str, Any] = {}
        for name, value in self.model_dump(mode="json").items():
            raw = getattr(self, name)
            if isinstance(raw, SecretStr) or (isinstance(raw, list) and raw and isinstance(raw[0], SecretStr)):
                value = "***" if not isinstance(raw, list) else ["***"] * len(raw)
            out[name] = value
        out["config_file"] = str(_find_config_file() or "") or None
        return out


_FILE_OVERRIDE: list[Path | None] = [None]


def _find_config_file() -> Path | None:
    if _FILE_OVERRIDE[0] is not None:
        return _FILE_OVERRIDE[0]
    env = os.environ.get(ENV_PREFIX + "CONFIG")
    if env:
        return Path(env).expanduser()
    home = default_home()
    for name in ("config.toml", "config.yaml", "config.yml"):
        if (home / name).is_file():
            return home / name
    return None


def read_config_file(path: Path) -> dict[str, Any]:
    """Parse a TOML or YAML settings file into a dict; malformed files raise ConfigurationError."""
    if not path.is_file():
        raise ConfigurationError(f"config file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigurationError(
            f"malformed config file {path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start})"
        ) from None
    except OSError as exc:
        raise ConfigurationError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    try:
        if path.suffix == ".toml":
            if sys.version_info >= (3, 11):
                import tomllib
            else:  # pragma: no cover
                import tomli as tomllib
            data = tomllib.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text) or {}
    except Exception as exc:  # noqa: BLE001 - tomllib and yaml raise their own types
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigurationError(f"malformed config file {path}: {first}") from None
    if not isinstance(data, dict):
        raise ConfigurationError(f"malformed config file {path}: expected a mapping at the top level")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


class _FileSource(PydanticBaseSettingsSource):
    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = _find_config_file()
        return read_config_file(path) if path else {}


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Build Settings from flags (`overrides`, None values ignored), env, file and defaults."""
    flags = {k: v for k, v in overrides.items() if v is not None}
    _FILE_OVERRIDE[0] = Path(config_file).expanduser() if config_file else None
    try:
        settings = Settings(**flags)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err.get("loc", ())) or "settings"
        raise ConfigurationError(f"invalid setting {where}: {err.get('msg', 'invalid value')}") from None
    finally:
        _FILE_OVERRIDE[0] = None
    return settings
