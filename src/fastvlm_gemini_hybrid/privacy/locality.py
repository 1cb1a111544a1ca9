"""Which endpoints count as this machine: the line between "local" and "leaves the machine".

An OpenAI-compatible server (vLLM, Ollama, llama.cpp) is local only when its URL names this machine
(a loopback address, `localhost`, or a Unix socket) or the configuration declares it trusted
(`openai_trusted`, for a server on the user's own network). Anything else sits behind the egress
gate like Gemini: a base URL on another host is another machine, whatever the docs of that server say.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

_UNIX_SCHEMES = ("unix", "http+unix", "https+unix")


def is_loopback_url(url: str | None) -> bool:
    """True for http(s)://localhost, 127.0.0.0/8, [::1] and Unix-socket URLs; False otherwise."""
    if not url:
        return False
    parts = urlsplit(url.strip())
    if parts.scheme.lower() in _UNIX_SCHEMES:
        return True
    host = (parts.hostname or "").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def openai_is_local(settings: object) -> bool:
    """Whether the configured OpenAI-compatible server may see sensitive requests."""
    trusted = bool(getattr(settings, "openai_trusted", False))
    return trusted or is_loopback_url(getattr(settings, "openai_base_url", None))


__all__ = ["is_loopback_url", "openai_is_local"]
