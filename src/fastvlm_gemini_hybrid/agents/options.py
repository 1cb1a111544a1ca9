"""Agent options as data: what an agent takes beyond the common routing flags, declared once.

Why data rather than argparse flags: the CLI (`agents run NAME INPUT -- --flag VALUE` and an agent's
own command such as `medical`), the HTTP API (`GET /v1/agents` publishes the JSON schema,
`POST /v1/agents/{name}` takes the values) and library callers must accept, refuse and default the
same options the same way, with the same one-line errors (exit 2 / HTTP 400).

Two rules keep a remote caller inside its lane. An option with `remote=False` (a report folder, a
webhook URL) writes to or reaches out from this machine, so only a local caller may set it. A `file`
option names a file on the command line; a remote caller sends the file's content instead, and the
server writes it to a private temporary file (`materialize`), so a client never names a server path.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import BadInputError, ConfigurationError

OptionType = Literal["string", "integer", "number", "boolean", "file", "directory"]
#: a checked option value (a `file` or `directory` option holds a local path)
OptionValue = str | int | float | bool | None
#: writes a remote caller's file content somewhere private and returns the path
Materialize = Callable[["OptionSpec", "str | dict[str, Any] | list[Any]"], str]

#: names the common options already use (request fields, AgentOptions attributes): an agent may not
#: declare them, so an HTTP body or a flag can never mean two things
RESERVED = frozenset({
    "attachments", "concurrency", "domain", "inputs", "job", "latency", "max_frames", "max_tokens", "mode", "model",
    "options", "overwrite", "params", "sensitive", "sidecar", "stream",
})
_TRUE = frozenset({"1", "true", "on", "yes"})
_FALSE = frozenset({"0", "false", "off", "no"})


@dataclass(frozen=True)
class OptionSpec:
    """One option: its name (an identifier; `--start-time` on the command line for `start_time`), how
    its value is read, and whether a remote caller may set it."""

    name: str
    type: OptionType
    help: str
    default: OptionValue = None
    required: bool = False
    choices: tuple[str, ...] = ()  # matched case-insensitively; the declared spelling is kept
    minimum: float | None = None
    remote: bool = True
    metavar: str | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def schema(self, *, remote: bool) -> dict[str, Any]:
        """This option's JSON schema, as a remote (content for `file`) or a local (a path) caller sends it."""
        out: dict[str, Any]
        if self.type == "file":
            out = {"type": ["string", "object"], "contentMediaType": "application/yaml"} if remote else {
                "type": "string", "format": "path"}
        elif self.type == "directory":
            out = {"type": "string", "format": "path"}
        else:
            out = {"type": self.type}
        if self.choices:
            out["enum"] = list(self.choices)
        if self.minimum is not None:
            out["minimum"] = self.minimum
        if self.default is not None:
            out["default"] = self.default
        out["description"] = self.help + (" (the file's content)" if remote and self.type == "file" else "")
        return out


def check_specs(specs: Iterable[OptionSpec], agent: str) -> None:
    """A packaging check the registry runs: unique identifier names that no common option uses."""
    seen: set[str] = set()
    for spec in specs:
        if not spec.name.isidentifier() or spec.name in RESERVED or spec.name in seen:
            raise ConfigurationError(f"agent {agent!r}: option name {spec.name!r} is invalid, reserved or repeated")
        seen.add(spec.name)


def options_schema(specs: Iterable[OptionSpec], *, remote: bool = False) -> dict[str, Any]:
    """The JSON schema of an agent's options object (for a remote caller: only what it may set)."""
    kept = [s for s in specs if s.remote or not remote]
    return {
        "type": "object",
        "properties": {s.name: s.schema(remote=remote) for s in kept},
        "required": [s.name for s in kept if s.required],
        "additionalProperties": False,
    }


def parse_options(
    specs: Iterable[OptionSpec], raw: Mapping[str, object], *, agent: str, remote: bool = False,
    materialize: Materialize | None = None,
) -> dict[str, OptionValue]:
    """Every declared option, checked and typed (defaults filled in); `BadInputError` names the first
    problem. Values may be typed already or strings (flags, form fields); None or "" means not given.
    Idempotent: parsing a parsed dict again returns it unchanged."""
    known = {s.name: s for s in specs}
    unknown = sorted(k for k in raw if k not in known)
    if unknown:
        names = ", ".join(known) or "none"
        raise BadInputError(f"the {agent} agent has no option {unknown[0]!r} (options: {names})")
    out: dict[str, OptionValue] = {}
    for name, spec in known.items():
        value = raw.get(name)
        if value is None or value == "":
            if spec.required:
                raise BadInputError(f"the {agent} agent needs the {name!r} option ({spec.flag} on the command line)")
            out[name] = spec.default
        elif remote and not spec.remote:
            raise BadInputError(f"the {agent} agent's {name!r} option can only be set on this machine's command line")
        elif remote and spec.type == "file":
            out[name] = _remote_file(spec, value, agent, materialize)
        else:
            out[name] = _coerce(spec, value, agent)
    return out


def _remote_file(spec: OptionSpec, value: object, agent: str, materialize: Materialize | None) -> str:
    if materialize is None:
        raise BadInputError(f"the {agent} agent's {spec.name!r} option cannot be sent from here")
    if not isinstance(value, str | dict | list):
        raise BadInputError(f"{spec.name} must be the file's text or a JSON object, got {type(value).__name__}")
    return materialize(spec, value)


def _coerce(spec: OptionSpec, value: object, agent: str) -> OptionValue:
    kind = spec.type
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        raise BadInputError(f"{spec.name} must be true or false, got {value!r}")
    if kind in ("integer", "number"):
        return _number(spec, value)
    if not isinstance(value, str):
        raise BadInputError(f"{spec.name} must be a string, got {type(value).__name__}")
    if spec.choices:
        for choice in spec.choices:
            if choice.lower() == value.strip().lower():
                return choice
        raise BadInputError(f"unknown {spec.name} {value!r}; choose one of: {', '.join(spec.choices)}")
    return value


def _number(spec: OptionSpec, value: object) -> int | float:
    wanted = "a whole number" if spec.type == "integer" else "a number"
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise BadInputError(f"{spec.name} must be {wanted}, got {value!r}")
    try:
        number: int | float = int(value) if spec.type == "integer" else float(value)
    except (TypeError, ValueError, OverflowError):
        raise BadInputError(f"{spec.name} must be {wanted}, got {str(value)[:40]!r}") from None
    if isinstance(value, float) and spec.type == "integer" and not value.is_integer():
        raise BadInputError(f"{spec.name} must be {wanted}, got {value!r}")
    if not math.isfinite(number):
        raise BadInputError(f"{spec.name} must be a finite number, got {value!r}")
    if spec.minimum is not None and number < spec.minimum:
        raise BadInputError(f"{spec.name} must be at least {spec.minimum:g}, got {number:g}")
    return number


def file_content(value: str | dict[str, Any] | list[Any]) -> str:
    """A remote `file` option's content as text (a JSON object is valid YAML too)."""
    return value if isinstance(value, str) else json.dumps(value)


__all__ = [
    "RESERVED",
    "Materialize",
    "OptionSpec",
    "OptionType",
    "OptionValue",
    "check_specs",
    "file_content",
    "options_schema",
    "parse_options",
]
