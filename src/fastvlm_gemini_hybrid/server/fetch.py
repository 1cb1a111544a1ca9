"""Download an image URL on a client's behalf without letting the client reach this server's network (SSRF).

Split from `media.py`, which decides what a URL becomes (`attachment_from_url`) and checks the media;
this module only fetches bytes. Every hop is checked (http(s), the allow-list, every resolved address
public), the connection goes to the address that was checked, one deadline covers the whole fetch and
the body is capped. `resolve`, `is_public` and `_ssl_context` are the seams tests replace.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import logging
import socket
import ssl
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from ..config import Settings
from ..errors import BadInputError, MediaTooLargeError

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

FETCH_DISABLED = (
    "this server does not download image URLs; send the image as a data: URI or upload it "
    "(an operator can enable downloads with FASTVLM_HYBRID_FETCH_IMAGE_URLS=true)"
)
# One message for every fetch failure, so that the answer says nothing about what is behind a URL
# (a refused address, no such host, a closed port, a timeout, a 404 and a non-image all read the same).
FETCH_FAILED = (
    "the image URL could not be fetched (fetching is limited to public hosts; "
    "send the image as a data: URI or upload it)"
)
REDIRECTS = frozenset({301, 302, 303, 307, 308})
_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")


class Unfetchable(Exception):
    """Why a fetch was refused: logged for the operator; the client only ever sees `FETCH_FAILED`."""


async def fetch(url: str, settings: Settings) -> bytes:
    """GET an image URL on a client's behalf without letting the client reach this server's network.

    Every hop (redirects are followed here, not by httpx) is checked: http(s) only, the host on
    `fetch_allowed_hosts` when that is set, and every address the name resolves to public. The
    connection then goes to the address that was checked (the URL carries the IP literal, the Host
    header and TLS SNI the name), so a second DNS answer cannot point it elsewhere. One deadline,
    `fetch_timeout_s`, covers resolution, every hop and the body; the body is capped at
    `max_upload_bytes` (413). Any other failure is `FETCH_FAILED`, whatever the cause.
    """
    try:
        return await asyncio.wait_for(_fetch(url, settings), timeout=settings.fetch_timeout_s)
    except MediaTooLargeError:
        raise
    except (asyncio.TimeoutError, Unfetchable, OSError, ValueError, UnicodeError) as exc:
        log.info("image URL refused: %s", str(exc) or type(exc).__name__)
    except Exception as exc:  # noqa: BLE001 - httpx's errors (HTTPError, InvalidURL, StreamError) and the like
        log.info("image URL refused: %s: %s", type(exc).__name__, exc)
    raise BadInputError(FETCH_FAILED)


async def _fetch(url: str, settings: Settings) -> bytes:
    import httpx

    limit = settings.max_upload_bytes
    too_large = f"the image URL is larger than the {limit / 1e6:g} MB upload limit"
    current = httpx.URL(url)
    async with httpx.AsyncClient(
        verify=_ssl_context(), trust_env=False, follow_redirects=False, timeout=settings.fetch_timeout_s,
        limits=httpx.Limits(max_keepalive_connections=0),
    ) as client:
        for _hop in range(settings.fetch_max_redirects + 1):
            async with _open(client, current, settings) as resp:
                location = resp.headers.get("location")
                if resp.status_code in REDIRECTS and location:
                    current = current.join(location)
                    continue
                if resp.status_code != 200:
                    raise Unfetchable(f"HTTP {resp.status_code}")
                declared = resp.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > limit:
                    raise MediaTooLargeError(too_large)
                buf = bytearray()
                async for chunk in resp.aiter_raw():
                    buf += chunk
                    if len(buf) > limit:
                        raise MediaTooLargeError(too_large)
                return bytes(buf)
    raise Unfetchable(f"more than {settings.fetch_max_redirects} redirects")


@contextlib.asynccontextmanager
async def _open(
    client: httpx.AsyncClient, url: httpx.URL, settings: Settings,
) -> AsyncIterator[httpx.Response]:
    """One checked hop: the response to GET `url`, sent to an address of its host that passed `is_public`."""
    import httpx

    host, port = _checked_target(url, settings)
    loop = asyncio.get_running_loop()
    try:
        addresses = await loop.run_in_executor(None, resolve, host, port)
    except (OSError, UnicodeError) as exc:
        raise Unfetchable(f"{host} does not resolve: {exc}") from None
    if not addresses:
        raise Unfetchable(f"{host} resolves to nothing")
    refused = [ip for ip in addresses if not is_public(ip)]
    if refused:
        raise Unfetchable(f"{host} resolves to a non-public address ({', '.join(refused)})")
    headers = {"Host": url.netloc.decode("ascii"), "Accept": "image/*", "Accept-Encoding": "identity"}
    extensions = {"sni_hostname": host} if url.scheme == "https" else {}
    for i, ip in enumerate(addresses):
        request = client.build_request("GET", url.copy_with(host=ip, port=port), headers=headers,
                                       extensions=extensions)
        try:
            resp = await client.send(request, stream=True)
        except httpx.ConnectError:
            if i == len(addresses) - 1:
                raise
            continue  # the next checked address of the same host
        try:
            yield resp
        finally:
            await resp.aclose()
        return


def _checked_target(url: httpx.URL, settings: Settings) -> tuple[str, int]:
    """(ASCII host, port) of a URL that may be fetched: http(s), no credentials, on the allow-list if any."""
    if url.scheme not in ("http", "https"):
        raise Unfetchable(f"scheme {url.scheme!r}")
    if url.userinfo:
        raise Unfetchable("credentials in the URL")
    host = url.raw_host.decode("ascii").lower().rstrip(".")
    if not host:
        raise Unfetchable("no host")
    if settings.fetch_allowed_hosts and not host_allowed(host, settings.fetch_allowed_hosts):
        raise Unfetchable(f"{host} is not on fetch_allowed_hosts")
    return host, url.port or (443 if url.scheme == "https" else 80)


def host_allowed(host: str, allowed: list[str]) -> bool:
    """`host` equals an entry, or ends with the suffix of a `*.suffix` entry (which the bare suffix does not match)."""
    host = host.lower().rstrip(".")
    for entry in allowed:
        entry = entry.strip().lower().rstrip(".")
        if entry.startswith("*."):
            if host.endswith(entry[1:]) and len(host) > len(entry) - 1:
                return True
        elif entry and host == entry:
            return True
    return False


def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (blocking; run in a thread). The one seam tests replace.

    `getaddrinfo` also reads numeric forms (`2130706433`, `0x7f.1`, `0177.0.0.1`, `127.1`) the way a
    connecting client would, so they are judged by the address they mean.
    """
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def is_public(ip: str) -> bool:
    """Whether `ip` is a public unicast address: what a fetch on a client's behalf may connect to.

    Refused: loopback, private (RFC 1918, fc00::/7), link-local, multicast, reserved, unspecified,
    CGNAT (100.64/10), documentation and benchmark ranges, site-local, and IPv6 forms that carry an
    IPv4 address (mapped, compatible, NAT64, 6to4, Teredo) unless that address is public itself.
    """
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:  # ::ffff:a.b.c.d connects to a.b.c.d
            return _public(addr.ipv4_mapped)
        if addr.is_site_local or not all(_public(v4) for v4 in _embedded_v4(addr)):
            return False
    return _public(addr)


def _embedded_v4(addr: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses an IPv6 address carries (compatible ::/96, NAT64, 6to4, Teredo server and client)."""
    if addr in _IPV4_COMPATIBLE or addr in _NAT64:
        return [ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)]
    if addr.sixtofour is not None:
        return [addr.sixtofour]
    if addr.teredo is not None:
        return list(addr.teredo)
    return []


def _public(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(addr, ipaddress.IPv4Address) and addr in _CGNAT:
        return False
    flags = (addr.is_private, addr.is_loopback, addr.is_link_local, addr.is_multicast, addr.is_reserved,
             addr.is_unspecified)
    return addr.is_global and not any(flags)


@functools.lru_cache(maxsize=1)
def _ssl_context() -> ssl.SSLContext:
    """One verifying TLS context for all fetches (building one loads the CA bundle: tens of ms)."""
    import httpx

    return httpx.create_ssl_context()
