"""Image URLs are fetched only from public hosts (SSRF): every refusal is proven by a server that counts connections.

The servers here listen on loopback. A server that plays a *public* host listens on 127.0.0.2 and is
admitted by a policy that treats exactly that address as public; everything else goes through the real
policy and the real resolver, so a refusal of 127.0.0.1 (in any spelling) is the product's own decision.
"""

from __future__ import annotations

import datetime
import http.server
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fastvlm_gemini_hybrid.server import fetch as media  # the URL fetch (SSRF policy), split from media.py
from synth_media import picture

PUBLIC_STANDIN = "127.0.0.2"  # a loopback address the tests' policy treats as public; 127.0.0.1 stays private
PROBE = "/__probe__"
Behaviour = Callable[[http.server.BaseHTTPRequestHandler], None]


def serve_png(handler: http.server.BaseHTTPRequestHandler) -> None:
    body = picture((9, 9, 9), (8, 8))
    handler.send_response(200)
    handler.send_header("Content-Type", "image/png")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def redirect_to(location: str) -> Behaviour:
    def behave(handler: http.server.BaseHTTPRequestHandler) -> None:
        handler.send_response(302)
        handler.send_header("Location", location)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    return behave


def answer(status: int, body: bytes = b"<html>no</html>", ctype: str = "text/html") -> Behaviour:
    def behave(handler: http.server.BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", ctype)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    return behave


def drip(handler: http.server.BaseHTTPRequestHandler) -> None:
    """A slow server: a PNG's worth of headers, then one byte a second (never enough for a read timeout)."""
    handler.send_response(200)
    handler.send_header("Content-Type", "image/png")
    handler.send_header("Content-Length", "100")
    handler.end_headers()
    server: CountingServer = handler.server.owner  # type: ignore[attr-defined]
    for _ in range(100):
        if server.stopped.wait(1.0):
            return
        try:
            handler.wfile.write(b"\x89")
            handler.wfile.flush()
        except OSError:
            return


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        owner: CountingServer = self.server.owner  # type: ignore[attr-defined]
        if self.path == PROBE:
            answer(204, b"")(self)
            return
        owner.requests.append((self.headers.get("Host", ""), self.path))
        owner.behaviour(self)

    def log_message(self, *_args: Any) -> None:
        pass


class CountingServer:
    """An HTTP server on a loopback address that counts every connection it accepts."""

    def __init__(self, behaviour: Behaviour, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        server_cls = type("Server", (http.server.ThreadingHTTPServer,),
                          {"address_family": family, "handle_error": lambda *_a: None})  # refused TLS: quiet
        self.accepted = 0
        self.probes = 0
        self.requests: list[tuple[str, str]] = []
        self.behaviour = behaviour
        self.stopped = threading.Event()
        self.tls = tls
        self.httpd = server_cls((host, 0), _Handler)
        self.httpd.owner = self  # type: ignore[attr-defined]
        self.httpd.daemon_threads = True
        self.httpd.verify_request = self._count  # type: ignore[method-assign]
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True, do_handshake_on_connect=False)
        self.host, self.port = host, self.httpd.server_address[1]
        self.netloc = f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def _count(self, _request: Any, _address: Any) -> bool:
        self.accepted += 1
        return True

    def connections(self) -> int:
        """Connections accepted so far, not counting this call's own probe.

        The probe is accepted after every connection already queued on the socket (accepts are in
        order), so a fetch that connected and was refused later would be counted before it returns.
        """
        with socket.create_connection((self.host, self.port), timeout=5) as sock:
            if self.tls is not None:
                ctx = ssl.create_default_context()
                ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
                sock = ctx.wrap_socket(sock)
            sock.sendall(f"GET {PROBE} HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n".encode())
            while sock.recv(4096):
                pass
        self.probes += 1
        return self.accepted - self.probes

    def close(self) -> None:
        self.stopped.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def servers() -> Iterator[Callable[..., CountingServer]]:
    started: list[CountingServer] = []

    def start(behaviour: Behaviour = serve_png, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None,
              ) -> CountingServer:
        srv = CountingServer(behaviour, host, tls)
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.close()


@pytest.fixture
def names(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Fake DNS for made-up names (name -> addresses; [] = no such host); other names use the real resolver."""
    table: dict[str, list[str]] = {}
    real_resolve, real_public = media.resolve, media.is_public

    def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            return real_resolve(host, port)
        if not table[host]:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return list(table[host])

    monkeypatch.setattr(media, "resolve", resolve)
    monkeypatch.setattr(media, "is_public", lambda ip: ip == PUBLIC_STANDIN or real_public(ip))
    return table


def public_server(servers: Callable[..., CountingServer], behaviour: Behaviour = serve_png,
                  tls: ssl.SSLContext | None = None) -> CountingServer:
    """A server that plays a public host (see PUBLIC_STANDIN); skipped where 127.0.0.2 cannot be bound."""
    try:
        return servers(behaviour, PUBLIC_STANDIN, tls)
    except OSError as exc:
        pytest.skip(f"cannot listen on {PUBLIC_STANDIN}: {exc}")


def chat(client: Any, url: str) -> Any:
    return client.post("/v1/chat/completions", json={"model": "gemini", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "describe"}, {"type": "image_url", "image_url": {"url": url}}]}]})


def refused(resp: Any) -> None:
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["message"] == media.FETCH_FAILED


@pytest.fixture
def fetching(app_factory: Callable[..., Any]) -> Iterator[Callable[..., Any]]:
    """A TestClient over an app with image URL fetching on (plus any other settings given)."""
    from fastapi.testclient import TestClient

    clients: list[Any] = []

    def make(**settings: Any) -> Any:
        app, proc = app_factory(cloud="fetched", fetch_image_urls=True, **settings)
        c = TestClient(app).__enter__()
        c.processor = proc
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.__exit__(None, None, None)


# --------------------------------------------------------------------------- off by default


def test_fetching_is_off_by_default(client: Any, servers: Callable[..., CountingServer]) -> None:
    srv = servers()
    url = f"http://{srv.netloc}/x.png"
    resp = chat(client, url)
    assert resp.status_code == 400
    message = resp.json()["error"]["message"]
    assert message == media.FETCH_DISABLED and "data: URI" in message and "FASTVLM_HYBRID_FETCH_IMAGE_URLS" in message
    resp = client.post("/v1/analyze", json={"prompt": "describe", "attachments": [url]})
    assert resp.status_code == 400 and resp.json()["error"]["message"] == media.FETCH_DISABLED
    assert srv.connections() == 0
    import base64

    data_uri = "data:image/png;base64," + base64.b64encode(picture((9, 9, 9), (8, 8))).decode()
    assert chat(client, data_uri).status_code == 200  # data: URIs always work


# --------------------------------------------------------------------------- refused addresses


@pytest.mark.parametrize("form", [
    "127.0.0.1", "localhost", "2130706433", "0x7f000001", "0177.0.0.1", "127.1", "0x7f.1", "0.0.0.0",
    "[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "images.example", "mixed.example",
])
def test_private_addresses_are_refused_before_connecting(
    form: str, fetching: Callable[..., Any], servers: Callable[..., CountingServer], names: dict[str, list[str]],
) -> None:
    """Every spelling of this machine, and names that resolve to it, get the same answer and no connection."""
    srv = servers()
    names["images.example"] = ["127.0.0.1"]  # a public-looking name whose DNS answer is loopback
    names["mixed.example"] = ["93.184.216.34", "127.0.0.1"]  # one private answer among public ones is enough
    resp = chat(fetching(), f"http://{form}:{srv.port}/x.png")
    refused(resp)
    assert str(srv.port) not in resp.text
    assert srv.connections() == 0


def test_ipv6_loopback_is_refused_before_connecting(fetching: Callable[..., Any],
                                                    servers: Callable[..., CountingServer]) -> None:
    try:
        srv = servers(host="::1")
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback here: {exc}")
    refused(chat(fetching(), f"http://[::1]:{srv.port}/x.png"))
    assert srv.connections() == 0


@pytest.mark.parametrize("ip", [
    "10.0.0.1", "172.16.5.4", "192.168.0.1", "169.254.169.254", "100.64.0.1", "224.0.0.1", "255.255.255.255",
    "0.0.0.0", "240.0.0.1", "::1", "::", "fe80::1", "fe80::1%lo", "fc00::1", "fd00:ec2::254", "ff02::1",
    "::ffff:10.0.0.1", "::ffff:169.254.169.254", "::127.0.0.1", "2002:7f00:1::1", "2002:a00:1::1",
    "2001:0:4136:e378:8000:63bf:3fff:fdd2", "64:ff9b::a00:1", "fec0::1", "192.0.2.1", "2001:db8::1", "garbage",
])
def test_non_public_addresses(ip: str) -> None:
    assert not media.is_public(ip)


@pytest.mark.parametrize("ip", ["8.8.8.8", "93.184.216.34", "2606:4700:4700::1111", "::ffff:8.8.8.8",
                                "2002:808:808::1"])
def test_public_addresses(ip: str) -> None:
    assert media.is_public(ip)


# --------------------------------------------------------------------------- public hosts


def test_a_public_host_is_fetched_at_the_address_that_was_checked(
    fetching: Callable[..., Any], servers: Callable[..., CountingServer], names: dict[str, list[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """DNS rebinding: the name is resolved once per hop and the connection goes to that answer."""
    public = public_server(servers)
    private = servers()
    answers = iter([[PUBLIC_STANDIN]])

    def rebinding(host: str, port: int) -> list[str]:
        return next(answers, ["127.0.0.1"])  # a second lookup would point at this machine

    monkeypatch.setattr(media, "resolve", rebinding)
    c = fetching()
    resp = chat(c, f"http://images.example:{public.port}/pics/x.png?size=8")
    assert resp.status_code == 200, resp.text
    assert resp.json()["choices"][0]["message"]["content"] == "fetched"
    assert c.processor.backend("gemini").calls[-1].attachments[0].mime == "image/png"
    assert public.requests == [(f"images.example:{public.port}", "/pics/x.png?size=8")]  # the real Host header
    assert public.connections() == 1 and private.connections() == 0


def test_a_redirect_to_a_private_address_is_refused(
    fetching: Callable[..., Any], servers: Callable[..., CountingServer], names: dict[str, list[str]],
) -> None:
    """The first hop is allowed (a public host); the hop it redirects to is checked again and refused."""
    inside = servers()
    public = public_server(servers, redirect_to(f"http://127.0.0.1:{inside.port}/secret.png"))
    names["images.example"] = [PUBLIC_STANDIN]
    refused(chat(fetching(), f"http://images.example:{public.port}/x.png"))
    assert public.connections() == 1
    assert inside.connections() == 0


def test_redirects_within_the_limit_are_followed_and_beyond_it_refused(
    fetching: Callable[..., Any], servers: Callable[..., CountingServer], names: dict[str, list[str]],
) -> None:
    names["images.example"] = [PUBLIC_STANDIN]
    final = public_server(servers)
    hop = public_server(servers, redirect_to(f"http://images.example:{final.port}/x.png"))
    first = public_server(servers, redirect_to(f"http://images.example:{hop.port}/next"))
    assert chat(fetching(fetch_max_redirects=2), f"http://images.example:{first.port}/").status_code == 200
    assert final.connections() == 1
    refused(chat(fetching(fetch_max_redirects=1), f"http://images.example:{first.port}/"))
    assert final.connections() == 1  # not reached the second time


def test_the_allow_list(fetching: Callable[..., Any], servers: Callable[..., CountingServer],
                        names: dict[str, list[str]]) -> None:
    public = public_server(servers)
    names.update({"img.allowed.example": [PUBLIC_STANDIN], "images.example": [PUBLIC_STANDIN]})
    c = fetching(fetch_allowed_hosts="*.allowed.example,cdn.example")
    assert chat(c, f"http://img.allowed.example:{public.port}/x.png").status_code == 200
    assert public.connections() == 1
    refused(chat(c, f"http://images.example:{public.port}/x.png"))
    assert public.connections() == 1
    assert media.host_allowed("a.b.allowed.example", ["*.allowed.example"])
    assert media.host_allowed("CDN.example.", ["cdn.example"])
    assert not media.host_allowed("allowed.example", ["*.allowed.example"])
    assert not media.host_allowed("evilallowed.example", ["*.allowed.example"])
    assert not media.host_allowed("cdn.example.evil", ["cdn.example"])


@pytest.mark.parametrize("case", ["no-such-host", "closed-port", "404", "not-an-image", "corrupt-image",
                                  "ftp-redirect", "credentials"])
def test_every_failure_reads_the_same(
    case: str, fetching: Callable[..., Any], servers: Callable[..., CountingServer], names: dict[str, list[str]],
) -> None:
    """Nothing about the target leaks: a missing host, a closed port, a 404 and a web page answer alike."""
    behaviours: dict[str, Behaviour] = {
        "404": answer(404), "not-an-image": answer(200), "ftp-redirect": redirect_to("ftp://images.example/x.png"),
        "corrupt-image": answer(200, picture((9, 9, 9), (8, 8))[:40], "image/png"),
    }
    srv = public_server(servers, behaviours.get(case, serve_png))
    port = srv.port
    names["images.example"] = [PUBLIC_STANDIN]
    host = "images.example"
    if case == "no-such-host":
        host = "no-such-host.example"
        names[host] = []
    elif case == "closed-port":
        port = socket_port_nobody_listens_on()
    elif case == "credentials":
        host = "user:secret@images.example"
    resp = chat(fetching(), f"http://{host}:{port}/x.png")
    assert resp.status_code == 400 and resp.json()["error"]["message"] == media.FETCH_FAILED


def socket_port_nobody_listens_on() -> int:
    with socket.socket() as s:
        s.bind((PUBLIC_STANDIN, 0))
        return s.getsockname()[1]


def test_a_slow_drip_is_cut_at_the_total_deadline(
    fetching: Callable[..., Any], servers: Callable[..., CountingServer], names: dict[str, list[str]],
) -> None:
    public = public_server(servers, drip)
    names["images.example"] = [PUBLIC_STANDIN]
    c = fetching(fetch_timeout_s=1.5)
    start = time.monotonic()
    resp = chat(c, f"http://images.example:{public.port}/x.png")
    elapsed = time.monotonic() - start
    refused(resp)
    assert 1.4 <= elapsed < 3.0, elapsed


def test_the_byte_cap_is_a_413(fetching: Callable[..., Any], servers: Callable[..., CountingServer],
                               names: dict[str, list[str]]) -> None:
    big = picture((9, 9, 9), (300, 300)) + b"\0" * 20_000
    public = public_server(servers, answer(200, big, "image/png"))
    names["images.example"] = [PUBLIC_STANDIN]
    resp = chat(fetching(max_upload_bytes=10_000), f"http://images.example:{public.port}/x.png")
    assert resp.status_code == 413, resp.text


def test_route_fetches_nothing(fetching: Callable[..., Any], servers: Callable[..., CountingServer],
                               names: dict[str, list[str]]) -> None:
    """`/v1/route` keeps URLs as URLs, even ones that would pass every check; no backend takes a bare URL."""
    public = public_server(servers)
    inside = servers()
    names["images.example"] = [PUBLIC_STANDIN]
    c = fetching()
    resp = c.post("/v1/route", json={"prompt": "describe", "attachments": [
        f"http://images.example:{public.port}/x.png", f"http://127.0.0.1:{inside.port}/x.png"]})
    assert resp.status_code == 400 and "url input" in resp.json()["error"]["message"], resp.text
    assert public.connections() == 0 and inside.connections() == 0


# --------------------------------------------------------------------------- TLS: certificates match the name


def _tls_pair(tmp_path: Path, name: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server context with a certificate for `name`, client context trusting only its test CA)."""
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(1).not_valid_before(now - datetime.timedelta(hours=1))
          .not_valid_after(now + datetime.timedelta(hours=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    leaf = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_name).public_key(leaf_key.public_key()).serial_number(2)
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    (tmp_path / "leaf.pem").write_bytes(leaf.public_bytes(pem) + leaf_key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(tmp_path / "leaf.pem")
    client = ssl.create_default_context(cadata=ca.public_bytes(pem).decode())
    return server, client


@pytest.mark.parametrize(("cert_name", "ok"), [("images.example", True), ("other.example", False)])
def test_https_checks_the_certificate_against_the_name_not_the_address(
    cert_name: str, ok: bool, tmp_path: Path, fetching: Callable[..., Any], servers: Callable[..., CountingServer],
    names: dict[str, list[str]], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The connection goes to the checked IP literal; SNI and verification use the URL's host name."""
    server_ctx, client_ctx = _tls_pair(tmp_path, cert_name)
    seen: list[str | None] = []
    server_ctx.sni_callback = lambda _sock, sni, _ctx: seen.append(sni)  # type: ignore[assignment,misc]
    public = public_server(servers, tls=server_ctx)
    names["images.example"] = [PUBLIC_STANDIN]
    monkeypatch.setattr(media, "_ssl_context", lambda: client_ctx)
    resp = chat(fetching(), f"https://images.example:{public.port}/x.png")
    if ok:
        assert resp.status_code == 200, resp.text
        assert public.requests == [(f"images.example:{public.port}", "/x.png")]
    else:
        refused(resp)
        assert public.requests == []
    assert seen[0] == "images.example"
