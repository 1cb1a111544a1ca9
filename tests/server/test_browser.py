"""The web UI in Debian's chromium through Playwright, against the real server on 127.0.0.1.

Run with `-m browser`; needs `/usr/bin/chromium` (see .ci/install-browser.sh) and the `browser` extra.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

import pytest

from synth_media import picture

pytestmark = pytest.mark.browser


@pytest.fixture
def browser(chromium_executable: str) -> Any:
    from playwright import sync_api

    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium_executable, args=["--no-sandbox", "--enable-unsafe-webgpu"])
        yield b
        b.close()


def guard(page: Any, seen: list[str]) -> None:
    """Abort any request that is not to 127.0.0.1, and remember every URL asked for."""

    def handle(route: Any) -> None:
        url = route.request.url
        seen.append(url)
        parsed = urlparse(url)
        if parsed.scheme in ("data", "blob") or parsed.hostname == "127.0.0.1":
            route.continue_()
        else:
            route.abort()

    page.route("**/*", handle)


def test_drag_and_drop_is_answered_through_the_server(
    browser: Any, app_factory: Callable[..., Any], live_server: Any,
) -> None:
    app, proc = app_factory(local=lambda req: f"a {req.attachments[0].mime} of {req.attachments[0].size} bytes")
    srv = live_server(app)
    page = browser.new_page()
    seen: list[str] = []
    guard(page, seen)
    page.goto(srv.url + "/")
    page.locator("#status", has_text="fastvlm (local): ready").wait_for()  # locators: no eval under the CSP
    page.fill("#prompt", "What is this?")
    page.check("#sensitive")
    data = list(picture((250, 0, 0), (40, 30)))
    page.evaluate(
        """(bytes) => {
            const file = new File([new Uint8Array(bytes)], 'red.png', { type: 'image/png' });
            const dt = new DataTransfer();
            dt.items.add(file);
            const drop = document.getElementById('drop');
            drop.dispatchEvent(new DragEvent('dragover', { dataTransfer: dt, bubbles: true, cancelable: true }));
            drop.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
        }""",
        data,
    )
    assert page.locator("#previews .chip").count() == 1  # dropped files wait in the composer for Send
    page.click("#ask")
    answer = page.locator(".msg.assistant").last
    answer.locator(".badge").wait_for()
    answer.locator(".route", has_text="answered by").wait_for(state="attached")
    assert answer.locator(".text").text_content().strip() == f"a image/png of {len(data)} bytes"
    assert "fastvlm" in answer.locator(".route").text_content()
    assert "path: server" in answer.locator(".timing").text_content()
    assert page.locator(".msg.assistant").count() == 1
    call = proc.backend("fastvlm").calls[-1]
    assert call.sensitive is True and call.prompt == "What is this?"
    assert proc.backend("gemini").calls == []
    hosts = {urlparse(u).hostname for u in seen if urlparse(u).scheme.startswith("http")}
    assert hosts == {"127.0.0.1"}, seen
    assert any(u.endswith("/v1/chat/completions") for u in seen)


def poll(page: Any, expression: str, timeout_s: float = 10.0) -> None:
    """Wait until `expression` is true. (wait_for_function compiles strings with eval: the CSP forbids it.)"""
    import time

    deadline = time.monotonic() + timeout_s
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout_s} s: {expression}")
        page.wait_for_timeout(100)


@pytest.fixture
def camera_browser(chromium_executable: str) -> Any:
    """Chromium with its built-in synthetic camera, permission granted without a prompt."""
    from playwright import sync_api

    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium_executable, args=[
            "--no-sandbox", "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"])
        yield b, pw.devices["Pixel 7"]
        b.close()


def test_phone_camera_live_analysis_goes_through_the_server(
    camera_browser: Any, app_factory: Callable[..., Any], live_server: Any,
) -> None:
    from PIL import Image

    sizes: list[tuple[int, int]] = []

    def local(req: Any) -> str:
        att = req.attachments[0]
        image = Image.open(io.BytesIO(att.data))
        sizes.append(image.size)
        return f"frame {len(sizes)}: {att.mime} {image.size[0]}x{image.size[1]}"

    browser, phone = camera_browser
    app, proc = app_factory(local=local)
    srv = live_server(app)
    context = browser.new_context(**phone)  # a phone's viewport, touch and user agent
    page = context.new_page()
    seen: list[str] = []
    guard(page, seen)
    page.goto(srv.url + "/")
    page.locator("#status", has_text="fastvlm (local): ready").wait_for()
    # laid out for the phone: nothing wider than the screen
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.tap("#open-settings")
    page.select_option("#mode", "local-only")
    page.tap("#close-settings")
    page.tap("#nav >> text=Live camera")
    page.fill("#cam-prompt", "Anything moving?")
    page.tap("#camera")
    poll(page, "document.getElementById('cam').readyState >= 2 && !document.getElementById('cam').hidden")
    page.select_option("#every", "1")
    page.check("#live")
    poll(page, "Number(document.getElementById('cam-count').textContent) >= 2", timeout_s=20)
    page.uncheck("#live")
    assert page.text_content("#caption").startswith("frame ") and "image/jpeg" in page.text_content("#caption")
    assert "fastvlm" in page.text_content("#cam-route") and page.text_content("#cam-path") == "server"
    width, height = page.evaluate("(v => [v.videoWidth, v.videoHeight])(document.getElementById('cam'))")
    assert width > 0 and sizes[0] == (width, height)  # the captured frame is the camera's picture, full size
    calls = proc.backend("fastvlm").calls
    assert len(calls) >= 2 and all(c.prompt == "Anything moving?" for c in calls)
    assert proc.backend("gemini").calls == []
    hosts = {urlparse(u).hostname for u in seen if urlparse(u).scheme.startswith("http")}
    assert hosts == {"127.0.0.1"}, seen
    context.close()
