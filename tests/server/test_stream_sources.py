"""The stream policy (server/stream_sources.py): which live stream URLs a client may make the server open.

Unit checks of `check_stream` with a stub resolver (off by default, the allow-list, bad schemes, names that
resolve where they must not, what FFmpeg is told per scheme), then FFmpeg itself against small HTTP servers
on 127.0.0.1: with the policy's options it follows no redirect and opens no playlist's further URLs, and
without them it does (so those two tests can fail).
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from fastvlm_gemini_hybrid.config import Settings, load_settings
from fastvlm_gemini_hybrid.errors import BadInputError, ConfigurationError
from fastvlm_gemini_hybrid.server import stream_sources
from fastvlm_gemini_hybrid.server.errors import classify
from fastvlm_gemini_hybrid.server.stream_sources import (
    FORMATS,
    StreamHostNotAllowed,
    StreamSourcesDisabled,
    check_stream,
)


class Resolver:
    """A stub DNS: each name's addresses (an IP literal resolves to itself); records every lookup."""

    def __init__(self, **names: list[str]) -> None:
        self.names = {k.replace("_", "."): v for k, v in names.items()}
        self.asked: list[str] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        return self.names.get(host, [host])


@pytest.fixture
def settings(tmp_path: Path) -> Callable[..., Settings]:
    def make(*allowed: str, enabled: bool = True, **kw: Any) -> Settings:
        return load_settings(home=tmp_path / "home", stream_sources=enabled, stream_allowed_hosts=list(allowed), **kw)

    return make


# --------------------------------------------------------------------------- off by default


def test_stream_sources_are_off_by_default_and_the_refusal_names_the_setting(tmp_path: Path) -> None:
    defaults = load_settings(home=tmp_path / "home")
    assert defaults.stream_sources is False and defaults.stream_allowed_hosts == []
    dns = Resolver()
    with pytest.raises(StreamSourcesDisabled) as info:
        check_stream("rtsp://cam.lan/live", defaults, resolve=dns)
    status, body, _ = classify(info.value)
    assert status == 403 and body["error"]["code"] == "stream_sources_disabled"
    assert "FASTVLM_HYBRID_STREAM_SOURCES=true" in body["error"]["message"]
    assert "FASTVLM_HYBRID_STREAM_ALLOWED_HOSTS" in body["error"]["message"]
    assert dns.asked == []  # nothing looked up, nothing opened


def test_the_settings_come_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FASTVLM_HYBRID_STREAM_SOURCES", "true")
    monkeypatch.setenv("FASTVLM_HYBRID_STREAM_ALLOWED_HOSTS", "Cam1.lan:554, 10.0.0.0/24,rtsp://door.lan")
    monkeypatch.setenv("FASTVLM_HYBRID_STREAM_MAX_S", "120")
    s = load_settings(home=tmp_path / "home")
    assert (s.stream_sources, s.stream_allowed_hosts, s.stream_max_s) == (
        True, ["cam1.lan:554", "10.0.0.0/24", "rtsp://door.lan"], 120.0)


def test_enabled_with_an_empty_list_allows_nothing(settings: Callable[..., Settings]) -> None:
    with pytest.raises(StreamHostNotAllowed, match=r"cam\.lan:554 is not on .* \(the list is empty\)"):
        check_stream("rtsp://cam.lan/live", settings(), resolve=Resolver())


# --------------------------------------------------------------------------- the allow-list


@pytest.mark.parametrize(
    ("entry", "url", "allowed"),
    [
        ("cam.lan", "rtsp://cam.lan/live", True),
        ("CAM.Lan.", "rtsp://cam.LAN./live", True),  # case and a trailing dot do not matter
        ("cam.lan:554", "rtsp://cam.lan/live", True),  # the scheme's default port
        ("cam.lan:8554", "rtsp://cam.lan/live", False),
        ("cam.lan", "rtsp://cam.lan.evil.example/live", False),
        ("cam.lan", "rtsp://cam.lan:554@evil.example/live", False),  # user info, not the host
        ("*.cams.example", "rtsp://door.cams.example/x", True),
        ("*.cams.example", "rtsp://cams.example/x", False),  # the bare suffix is not a subdomain
        ("*.cams.example", "rtsp://evilcams.example/x", False),
        ("10.0.0.0/24", "tcp://10.0.0.7:9000", True),
        ("10.0.0.0/24", "tcp://10.0.1.7:9000", False),
        ("10.0.0.7:9000", "tcp://10.0.0.7:9001", False),
        ("[fd00::5]:554", "rtsp://[fd00::5]/x", True),
        ("rtsp://cam.lan", "rtsp://cam.lan/x", True),
        ("rtsp://cam.lan", "rtmp://cam.lan/x", False),  # an entry with a scheme allows that scheme only
    ],
)
def test_allow_list_match_and_mismatch(settings: Callable[..., Settings], entry: str, url: str,
                                       allowed: bool) -> None:
    dns = Resolver(cam_lan=["10.0.0.7"], door_cams_example=["10.0.0.8"])
    if allowed:
        source = check_stream(url, settings(entry), resolve=dns)
        assert source.addresses and source.host in dns.asked
    else:
        with pytest.raises(StreamHostNotAllowed) as info:
            check_stream(url, settings(entry), resolve=dns)
        assert classify(info.value)[0] == 403
        assert f"{urlsplit(url).hostname}" in str(info.value) and "stream_allowed_hosts" in str(info.value)
        assert dns.asked == []  # refused by name before any lookup


def test_a_malformed_allow_list_entry_is_the_operators_error(settings: Callable[..., Settings]) -> None:
    for entry in ("cam.lan:99999", "ftp://cam.lan", "cam.lan/path", "user@cam.lan"):
        with pytest.raises(ConfigurationError, match="stream_allowed_hosts entry"):
            check_stream("rtsp://cam.lan/x", settings(entry), resolve=Resolver())


# --------------------------------------------------------------------------- bad URLs


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "concat:/etc/passwd|/etc/hosts",
        "pipe:0",
        "data:video/mp2t;base64,R0lGODlh",
        "subfile,,start,0,end,0,,:/etc/passwd",
        "async:tcp://cam.lan:9000",
        "cache:http://cam.lan/x",
        "crypto:file:///etc/passwd",
        "udp://239.0.0.1:1234",  # receiving binds and joins groups: not a connection to a camera
        "ftp://cam.lan/x",
        "/etc/passwd",
        "cam.lan:554",
        "rtsp://cam.lan/x\r\nCSeq: 9",  # header injection
        "rtsp://cam.lan/x y",
        "rtsp://cam.lan/x#frag",
        "rtsp:///x",  # no host
        "tcp://cam.lan",  # tcp needs a port
        "tcp://cam.lan:9000?listen=1",  # FFmpeg reads a tcp query as options
        "tcp://user:pw@cam.lan:9000",
        "rtsp://cam.lan:http/x",
    ],
)
def test_bad_schemes_and_malformed_urls_are_400(settings: Callable[..., Settings], url: str) -> None:
    dns = Resolver()
    with pytest.raises(BadInputError) as info:
        check_stream(url, settings("cam.lan", "*.lan", "10.0.0.0/8"), resolve=dns)
    assert classify(info.value)[0] == 400
    assert dns.asked == []


# --------------------------------------------------------------------------- where names resolve


@pytest.mark.parametrize(
    "addresses",
    [["127.0.0.1"], ["169.254.169.254"], ["10.0.0.5", "127.0.0.1"], ["::1"], ["::ffff:127.0.0.1"], ["0.0.0.0"],
     ["224.0.0.1"], ["fe80::1%eth0"]],
)
def test_a_listed_name_that_resolves_to_a_non_allowed_address_is_refused(
    settings: Callable[..., Settings], addresses: list[str],
) -> None:
    with pytest.raises(StreamHostNotAllowed, match="resolves to") as info:
        check_stream("rtsp://cam.lan/live", settings("cam.lan"), resolve=Resolver(cam_lan=addresses))
    assert classify(info.value)[0] == 403


def test_an_address_listed_by_address_may_be_reached_by_name(settings: Callable[..., Settings]) -> None:
    dns = Resolver(localhost=["127.0.0.1"])
    with pytest.raises(StreamHostNotAllowed, match=r"resolves to 127\.0\.0\.1"):
        check_stream("tcp://localhost:9000", settings("localhost:9000"), resolve=dns)
    source = check_stream("tcp://localhost:9000", settings("localhost:9000", "127.0.0.1"), resolve=dns)
    assert source.url == "tcp://127.0.0.1:9000" and source.label == "tcp://localhost:9000"


def test_a_name_that_does_not_resolve_is_400(settings: Callable[..., Settings]) -> None:
    def fails(host: str, port: int) -> list[str]:
        raise OSError("Name or service not known")

    with pytest.raises(BadInputError, match="does not resolve"):
        check_stream("rtsp://cam.lan/x", settings("cam.lan"), resolve=fails)


# --------------------------------------------------------------------------- what FFmpeg is told


@pytest.mark.parametrize(
    ("url", "protocols", "opened"),
    [
        ("rtsp://admin:secret@cam.lan/h264?channel=1", "rtsp,tcp", "rtsp://admin:secret@10.0.0.7:554/h264?channel=1"),
        ("rtsps://cam.lan/h264", "rtsp,tls,tcp", "rtsps://cam.lan:322/h264"),  # TLS keeps the name
        ("rtmp://cam.lan/live/key", "rtmp,tcp", "rtmp://10.0.0.7:1935/live/key"),
        ("http://cam.lan:8080/video.mjpg", "http,tcp", "http://10.0.0.7:8080/video.mjpg"),
        ("https://cam.lan/live.ts", "https,tls,tcp", "https://cam.lan:443/live.ts"),
        ("tcp://cam.lan:9000", "tcp", "tcp://10.0.0.7:9000"),
        ("srt://cam.lan:9000", "srt", "srt://10.0.0.7:9000"),
    ],
)
def test_protocol_whitelist_and_target_per_scheme(
    settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch, url: str, protocols: str, opened: str,
) -> None:
    monkeypatch.setattr(stream_sources, "ffmpeg_stops_redirects", lambda: True)
    source = check_stream(url, settings("cam.lan"), resolve=Resolver(cam_lan=["10.0.0.7"]))
    assert source.options["protocol_whitelist"] == protocols
    assert "file" not in protocols.split(",") and "udp" not in protocols.split(",")
    assert source.url == opened
    formats = set(source.options["format_whitelist"].split(","))
    assert formats == set(FORMATS.split(",")) and "mpegts" in formats
    assert not formats & {"hls", "dash", "concat", "sdp", "rtp", "image2", "tee"}  # nothing that opens more URLs
    web = source.scheme in ("http", "https")
    assert (source.options.get("max_redirects") == "0") is web
    assert ("headers" in source.options) is (source.scheme == "http")
    if source.scheme == "http":
        assert source.options["headers"] == "Host: cam.lan:8080\r\n"  # pinned address, the name kept for the server
    assert "secret" not in source.label and (source.label == url.replace(":secret@", ":***@"))


def test_http_needs_an_explicit_entry_where_ffmpeg_would_follow_redirects(
    settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(stream_sources, "ffmpeg_stops_redirects", lambda: False)
    dns = Resolver(cam_lan=["10.0.0.7"])
    with pytest.raises(StreamHostNotAllowed):
        check_stream("http://cam.lan/video.mjpg", settings("cam.lan"), resolve=dns)
    assert check_stream("rtsp://cam.lan/x", settings("cam.lan"), resolve=dns).scheme == "rtsp"  # others unaffected
    assert check_stream("http://cam.lan/video.mjpg", settings("http://cam.lan"), resolve=dns).scheme == "http"


# --------------------------------------------------------------------------- FFmpeg, for real


class Web:
    """An HTTP server on 127.0.0.1 answering `routes` (path -> (status, headers, body)); records each path asked."""

    def __init__(self, routes: dict[str, tuple[int, dict[str, str], bytes]]) -> None:
        self.seen: list[str] = []
        seen = self.seen

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                seen.append(self.path)
                status, headers, body = routes.get(self.path, (404, {}, b""))
                self.send_response(status)
                for key, value in {**headers, "Content-Length": str(len(body))}.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: object) -> None:
                return None

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def web() -> Iterator[Callable[..., Web]]:
    servers: list[Web] = []

    def start(routes: dict[str, tuple[int, dict[str, str], bytes]]) -> Web:
        servers.append(Web(routes))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def _open(url: str, options: dict[str, str] | None) -> None:
    from fastvlm_gemini_hybrid.video.decode import VideoSource

    VideoSource(url, reconnect_attempts=0, open_timeout_s=3, open_options=options).close()


def test_ffmpeg_follows_no_redirect_with_the_policys_options(
    settings: Callable[..., Settings], web: Callable[..., Web],
) -> None:
    pytest.importorskip("av")
    assert stream_sources.ffmpeg_stops_redirects() is True  # this PyAV's FFmpeg honours max_redirects
    server = web({"/live": (302, {"Location": "/elsewhere"}, b"")})
    url = f"http://127.0.0.1:{server.port}/live"
    source = check_stream(url, settings(f"127.0.0.1:{server.port}"))
    with pytest.raises(BadInputError, match="cannot open video"):
        _open(source.url, source.options)
    assert server.seen == ["/live"]
    with pytest.raises(BadInputError):  # the control: FFmpeg's default does follow it
        _open(url, None)
    assert server.seen == ["/live", "/live", "/elsewhere"]


def test_a_playlist_cannot_make_ffmpeg_open_further_urls(
    settings: Callable[..., Settings], web: Callable[..., Web],
) -> None:
    pytest.importorskip("av")
    playlist: dict[str, tuple[int, dict[str, str], bytes]] = {}
    server = web(playlist)
    segment = f"http://127.0.0.1:{server.port}/segment.ts"
    body = f"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\n{segment}\n#EXT-X-ENDLIST\n".encode()
    playlist["/live.m3u8"] = (200, {"Content-Type": "application/vnd.apple.mpegurl"}, body)
    url = f"http://127.0.0.1:{server.port}/live.m3u8"
    source = check_stream(url, settings(f"127.0.0.1:{server.port}"))
    with pytest.raises(BadInputError, match="cannot open video"):
        _open(source.url, source.options)
    assert server.seen == ["/live.m3u8"]
    with pytest.raises(BadInputError):  # the control: without the format whitelist the HLS demuxer reads on
        _open(url, {"protocol_whitelist": "http,tcp"})
    assert "/segment.ts" in server.seen
