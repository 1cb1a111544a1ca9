"""Live stream URLs a client may make this server open (the surveillance agent's `stream` input).

Why so strict: a server that opens any URL a request names is an SSRF hole, and FFmpeg reads far more
than network video (`file:`, `concat:`, `subfile:`, `pipe:`, `data:`; playlists such as HLS or the
concat demuxer that open further URLs; HTTP redirects). So `check_stream`, in this order:

1. `stream_sources` must be on (off by default): else 403 `stream_sources_disabled`, naming the setting.
2. The URL: one of SCHEMES with a host, no whitespace, control characters or fragment; a query only where
   it is part of the resource (rtsp, http), never where FFmpeg reads it as options (`tcp://h:1?listen=1`).
   Else 400.
3. The host on `stream_allowed_hosts`: `host`, `host:port`, `*.suffix[:port]`, an IP, `[v6]:port` or a
   CIDR block, each optionally limited to one scheme (`rtsp://cam.lan`). Else 403 `stream_host_not_allowed`
   naming the host. An empty list allows nothing.
4. The name is resolved here and every address checked: one listed by address (IP or CIDR) is allowed; a
   host listed by name may reach its network, but not loopback, link-local (cloud metadata), multicast,
   reserved or unspecified addresses unless those are listed by address. Else 403.
5. What FFmpeg gets (`StreamSource.options`): a `protocol_whitelist` for the scheme (nested opens inherit
   it), a `format_whitelist` of live formats (no playlist or concat demuxer), `max_redirects=0` for http(s)
   and, for schemes without TLS, the URL rewritten to the checked address so a second DNS answer cannot
   move the connection (http keeps the name in its Host header). TLS schemes keep the name, which FFmpeg
   resolves again: list those hosts by address where DNS is not trusted.

FFmpeg's RTSP client follows RTSP redirects and has no option to refuse them: a listed camera is trusted.
Where this FFmpeg cannot refuse HTTP redirects (`ffmpeg_stops_redirects`, probed once), http(s) is allowed
only through an entry that names the scheme (`http://cam.lan:8080`).
"""

from __future__ import annotations

import functools
import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import SplitResult, urlsplit, urlunsplit

from ..config import Settings
from ..errors import BadInputError, ConfigurationError, PolicyViolationError

#: scheme -> (FFmpeg protocols it may use, default port or None when the URL must give one)
SCHEMES: dict[str, tuple[str, int | None]] = {
    "rtsp": ("rtsp,tcp", 554),  # interleaved over TCP (video/decode.py sets rtsp_transport=tcp): no udp
    "rtsps": ("rtsp,tls,tcp", 322),
    "rtmp": ("rtmp,tcp", 1935),
    "http": ("http,tcp", 80),
    "https": ("https,tls,tcp", 443),
    "tcp": ("tcp", None),
    "srt": ("srt", None),
}
#: demuxers a live source may be read with: none of them opens another URL (no hls, dash, concat, sdp)
FORMATS = "mpegts,rtsp,flv,live_flv,mjpeg,mpjpeg,h264,hevc,matroska,mov,mpeg,mpegvideo,ivf,avi,ogg"
_TLS = frozenset({"rtsps", "https"})
_QUERY_IS_RESOURCE = frozenset({"rtsp", "rtsps", "http", "https"})
_FORBIDDEN_CHARS = frozenset(" \t\r\n\\<>\"{}|^`") | {chr(c) for c in range(32)} | {"\x7f"}
DISABLED = (
    "this server does not open stream URLs; an operator can enable them with FASTVLM_HYBRID_STREAM_SOURCES=true "
    "(setting stream_sources) and list the cameras it may reach in FASTVLM_HYBRID_STREAM_ALLOWED_HOSTS "
    "(setting stream_allowed_hosts, e.g. cam1.lan:554); or upload a clip"
)


class StreamSourcesDisabled(PolicyViolationError):
    code = "stream_sources_disabled"


class StreamHostNotAllowed(PolicyViolationError):
    code = "stream_host_not_allowed"


@dataclass(frozen=True)
class Allowed:
    """One `stream_allowed_hosts` entry."""

    name: str | None = None  # a host name, or a `*.suffix` pattern
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None
    port: int | None = None
    scheme: str | None = None

    def matches(self, scheme: str, host: str, port: int) -> bool:
        if (self.scheme and self.scheme != scheme) or (self.port is not None and self.port != port):
            return False
        if self.network is not None:
            return _in(host, self.network)
        name = self.name or ""
        return host == name or (name.startswith("*.") and host.endswith(name[1:]) and len(host) > len(name) - 1)


@dataclass(frozen=True)
class StreamSource:
    """A stream URL that passed every check, and how to open it."""

    url: str  # what FFmpeg opens: the checked address for schemes without TLS
    label: str  # the URL as the client wrote it, any password hidden: what results and errors show
    scheme: str
    host: str
    port: int
    addresses: tuple[str, ...]
    options: dict[str, str] = field(default_factory=dict)  # FFmpeg options


def parse_allowed(entries: list[str]) -> list[Allowed]:
    """The allow-list as `Allowed` entries; a malformed entry is the operator's error (ConfigurationError)."""
    out: list[Allowed] = []
    for raw in entries:
        entry = raw.strip().lower().rstrip(".")
        scheme = None
        if "://" in entry:
            scheme, entry = entry.split("://", 1)
            if scheme not in SCHEMES:
                raise ConfigurationError(f"stream_allowed_hosts entry {raw!r}: unknown scheme {scheme!r}")
        try:
            out.append(_entry(entry, scheme))
        except ValueError:
            raise ConfigurationError(f"stream_allowed_hosts entry {raw!r} is not host, host:port, *.suffix, "
                                     "an IP address or a CIDR block") from None
    return out


def _entry(entry: str, scheme: str | None) -> Allowed:
    if "/" in entry:
        return Allowed(network=ipaddress.ip_network(entry, strict=False), scheme=scheme)
    parts = urlsplit(f"//{entry}")
    host, port = (parts.hostname or "").rstrip("."), parts.port  # .port raises ValueError on a bad port
    if not host or parts.path or parts.query or parts.username:
        raise ValueError(entry)
    try:
        return Allowed(network=ipaddress.ip_network(host), port=port, scheme=scheme)
    except ValueError:
        return Allowed(name=host, port=port, scheme=scheme)


def check_stream(
    url: str, settings: Settings, *, resolve: Callable[[str, int], list[str]] | None = None,
) -> StreamSource:
    """`url` checked against the settings (see the module docstring), resolved, and ready to open."""
    if not settings.stream_sources:
        raise StreamSourcesDisabled(DISABLED)
    scheme, host, port, parts = _parse(url)
    shown = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
    allowed = parse_allowed(settings.stream_allowed_hosts)
    if scheme in ("http", "https") and not ffmpeg_stops_redirects():
        allowed = [a for a in allowed if a.scheme == scheme]  # FFmpeg would follow redirects: explicit only
    matched = [a for a in allowed if a.matches(scheme, host, port)]
    if not matched:
        empty = " (the list is empty)" if not settings.stream_allowed_hosts else ""
        raise StreamHostNotAllowed(f"stream host {shown} is not on this server's stream_allowed_hosts{empty}; an "
                                   "operator can add it to FASTVLM_HYBRID_STREAM_ALLOWED_HOSTS")
    try:
        addresses = (resolve or resolve_host)(host, port)
    except (OSError, UnicodeError):
        raise BadInputError(f"stream host {host} does not resolve") from None
    if not addresses:
        raise BadInputError(f"stream host {host} does not resolve")
    by_name = any(a.network is None for a in matched)
    for ip in addresses:
        if not _address_allowed(ip, scheme, port, allowed, by_name):
            raise StreamHostNotAllowed(
                f"stream host {host} resolves to {ip}, which stream_allowed_hosts does not allow (loopback, "
                "link-local, multicast and reserved addresses must be listed by address)")
    options = {"protocol_whitelist": SCHEMES[scheme][0], "format_whitelist": FORMATS}
    target = host
    if scheme not in _TLS:
        target = addresses[0]  # connect to the address that was checked
        if scheme == "http":
            options["headers"] = f"Host: {parts.netloc.rsplit('@', 1)[-1]}\r\n"
    if scheme in ("http", "https"):
        options["max_redirects"] = "0"
    return StreamSource(url=_rebuild(parts, target, port), label=_label(parts), scheme=scheme, host=host,
                        port=port, addresses=tuple(addresses), options=options)


def _parse(url: str) -> tuple[str, str, int, SplitResult]:
    if not isinstance(url, str) or not url:
        raise BadInputError("stream must be a URL such as rtsp://camera.lan/stream")
    schemes = ", ".join(f"{s}://" for s in SCHEMES)
    if "://" not in url or not url.split("://", 1)[0].isalnum():
        raise BadInputError(f"stream must be a URL starting with one of {schemes}; got {url[:40]!r}")
    if any(c in _FORBIDDEN_CHARS for c in url):
        raise BadInputError("stream URL has whitespace, control or unsafe characters")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise BadInputError(f"stream URL scheme {scheme}:// is not allowed; use one of {schemes}")
    try:
        port = parts.port or SCHEMES[scheme][1]
    except ValueError:
        raise BadInputError("stream URL has a malformed port") from None
    host = (parts.hostname or "").rstrip(".")
    if not host or port is None:
        raise BadInputError(f"stream URL needs a host{'' if SCHEMES[scheme][1] else ' and a port'}: {scheme}://HOST:PORT")
    if parts.fragment or "#" in url:
        raise BadInputError("stream URL must not have a #fragment")
    if parts.query and scheme not in _QUERY_IS_RESOURCE:
        raise BadInputError(f"{scheme}:// stream URLs take no ?query (FFmpeg would read it as options)")
    if parts.username is not None and scheme in ("tcp", "srt"):
        raise BadInputError(f"{scheme}:// stream URLs take no user name or password")
    return scheme, host, port, parts


def _address_allowed(ip: str, scheme: str, port: int, allowed: list[Allowed], by_name: bool) -> bool:
    if any(a.network is not None and a.matches(scheme, ip, port) for a in allowed):
        return True
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    special = (addr.is_loopback, addr.is_link_local, addr.is_multicast, addr.is_reserved, addr.is_unspecified)
    return by_name and not any(special)


def _in(host: str, network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]) in network
    except ValueError:
        return False


def _rebuild(parts: SplitResult, host: str, port: int) -> str:
    """The URL with `host` and an explicit port (IPv6 in brackets), credentials, path and query kept."""
    netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    user = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
    return urlunsplit((parts.scheme.lower(), user + netloc, parts.path, parts.query, ""))


def _label(parts: SplitResult) -> str:
    """The URL as written, a password replaced by ***."""
    netloc = parts.netloc
    if parts.password is not None:
        netloc = f"{parts.username}:***@{netloc.rsplit('@', 1)[-1]}"
    return urlunsplit((parts.scheme.lower(), netloc, parts.path, parts.query, ""))


def resolve_host(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (blocking: call it off the event loop). The seam tests replace."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@functools.lru_cache(maxsize=1)
def ffmpeg_stops_redirects() -> bool:
    """Whether this FFmpeg honours `max_redirects=0` (FFmpeg 8 does; older builds ignore the unknown option).

    Probed once against a throwaway HTTP server on 127.0.0.1 that answers with a redirect."""
    import http.server
    import threading

    from .._optional import require

    av = require("av", "video", "stream sources")
    seen: list[str] = []

    class Redirect(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            self.send_response(302 if self.path == "/probe" else 404)
            self.send_header("Location", "/followed")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args: object) -> None:
            return None

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/probe"
        av.open(url, options={"max_redirects": "0", "protocol_whitelist": "http,tcp"}, timeout=3).close()
    except Exception:  # noqa: BLE001 - the open is meant to fail; only what the server saw matters
        pass
    finally:
        server.shutdown()
        server.server_close()
    return seen == ["/probe"]


__all__ = [
    "DISABLED", "FORMATS", "SCHEMES", "Allowed", "StreamHostNotAllowed", "StreamSource", "StreamSourcesDisabled",
    "check_stream", "ffmpeg_stops_redirects", "parse_allowed", "resolve_host",
]
