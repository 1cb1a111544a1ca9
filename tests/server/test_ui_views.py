"""The web UI's views in Debian's chromium through Playwright, against the real server on 127.0.0.1.

Each test drives one view the way a person would (files dropped or picked, keys pressed, buttons
clicked) and asserts on what reached the fake backends (tests/fakes.py) and on what the page shows.
Every page runs under the server's Content-Security-Policy with a route guard that aborts and records
any request not to 127.0.0.1; a CSP violation in the console fails the test. axe-core (vendored from
npm by server/vendor_web.py, tests only) checks each view: no serious or critical violations.
Screenshots of each view go to $FASTVLM_HYBRID_UI_ARTIFACTS (default: <tmp>/fastvlm-hybrid-ui).

Run with `pytest -m browser tests/server/test_ui_views.py`.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from fastvlm_gemini_hybrid.backends.base import Capabilities
from fastvlm_gemini_hybrid.server import vendor_web
from fastvlm_gemini_hybrid.types import BackendKind, Request, Turn
from synth_media import make_clip, picture

pytestmark = pytest.mark.browser

ARTIFACTS = Path(os.environ.get("FASTVLM_HYBRID_UI_ARTIFACTS") or Path(tempfile.gettempdir()) / "fastvlm-hybrid-ui")
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
#: a picture whose text the privacy inspector's OCR reads: a payment card number (Luhn-valid) at (40, 40)
CARD_SIZE, CARD_TEXT = (1000, 300), "Card 4111 1111 1111 1111"
#: a fake local backend that takes conversations as turns (so the history arrives as `Request.history`)
CONVERSATION = Capabilities(kind=BackendKind.LOCAL, media=frozenset({"image", "video"}), max_images=8,
                            streaming=True, conversation=True)


# ------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def browser(chromium_executable: str) -> Iterator[Any]:
    """One chromium for the module, with Chromium's synthetic camera granted without a prompt."""
    from playwright import sync_api

    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium_executable, args=[
            "--no-sandbox", "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"])
        yield b
        b.close()


@pytest.fixture(scope="module")
def axe_script() -> str:
    """The vendored axe-core, vendoring it from node_modules when needed; skip when there is none."""
    if vendor_web.dev_file("axe.min.js") is None:
        root = Path(__file__).resolve().parents[2] / "node_modules"
        if not (root / "axe-core" / "axe.min.js").is_file() or (vendor_web.missing() and not (
                root / "@huggingface/transformers/dist/transformers.min.js").is_file()):
            pytest.skip("axe-core is not vendored (npm ci, then scripts/vendor-web.sh)")
        vendor_web.vendor(root)
    return "/ui/vendor/axe.min.js"


class UI:
    """A page of the UI with the guard, the CSP watch and helpers."""

    def __init__(self, browser: Any, url: str, *, viewport: dict[str, int] = DESKTOP, scheme: str = "light",
                 **context_kw: Any) -> None:
        self.url = url
        self.context = browser.new_context(viewport=viewport, color_scheme=scheme, **context_kw)
        self.page = self.context.new_page()
        self.seen: list[str] = []
        self.csp: list[str] = []
        self.page.route("**/*", self._guard)
        self.page.on("console", lambda m: self.csp.append(m.text) if "Content Security Policy" in m.text else None)

    def _guard(self, route: Any) -> None:
        url = route.request.url
        self.seen.append(url)
        parsed = urlparse(url)
        if parsed.scheme in ("data", "blob") or parsed.hostname == "127.0.0.1":
            route.continue_()
        else:
            route.abort()

    def open(self, view: str = "chat", ready: str | None = "fastvlm (local): ready") -> Any:
        self.page.goto(f"{self.url}/#/{view}")
        if ready:
            self.page.locator("#status", has_text=ready).wait_for()
        self.page.locator(f"#view-{view}").wait_for(state="attached")
        return self.page

    def poll(self, expression: str, timeout_s: float = 15.0) -> Any:
        """Wait until `expression` is truthy (wait_for_function compiles strings with eval: the CSP forbids it)."""
        deadline = time.monotonic() + timeout_s
        while not (value := self.page.evaluate(expression)):
            if time.monotonic() > deadline:
                raise AssertionError(f"still false after {timeout_s} s: {expression}")
            self.page.wait_for_timeout(100)
        return value

    def axe(self, script: str, name: str) -> list[dict[str, Any]]:
        """axe-core's serious and critical violations on the page as it is now (all are written to artifacts)."""
        self.page.add_script_tag(url=self.url + script)  # a same-origin URL: the CSP refuses inline scripts
        found = self.page.evaluate(
            "axe.run(document, {resultTypes: ['violations']}).then(r => r.violations.map(v => ({id: v.id, "
            "impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 5).map(n => n.target.join(' '))})))")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / f"axe-{name}.json").write_text(json.dumps(found, indent=1))
        return [v for v in found if v["impact"] in ("serious", "critical")]

    def shot(self, name: str, **kw: Any) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        if kw.get("full_page"):
            self.page.evaluate("scrollTo(0, 0)")  # the sticky header belongs at the top of a full-page picture
        self.page.screenshot(path=str(path), **kw)
        return path

    def fits(self) -> bool:
        """Nothing wider than the screen (no sideways scrolling, and a phone did not zoom out to fit)."""
        width = self.page.viewport_size["width"]
        return self.page.evaluate(f"document.documentElement.scrollWidth <= {width} && window.innerWidth === {width}")

    def hosts(self) -> set[str | None]:
        return {urlparse(u).hostname for u in self.seen if urlparse(u).scheme.startswith("http")}

    def close(self) -> None:
        assert self.csp == [], f"Content-Security-Policy violations: {self.csp}"
        assert self.hosts() <= {"127.0.0.1"}, self.seen
        self.context.close()


@pytest.fixture
def ui(browser: Any) -> Iterator[Callable[..., UI]]:
    opened: list[UI] = []

    def make(url: str, **kw: Any) -> UI:
        opened.append(UI(browser, url, **kw))
        return opened[-1]

    yield make
    for page in opened:
        page.close()


def upload(page: Any, *files: tuple[str, str, bytes]) -> None:
    page.set_input_files("#files", files=[{"name": n, "mimeType": m, "buffer": b} for n, m, b in files])


def last_answer(page: Any) -> Any:
    return page.locator(".msg.assistant").last


def wait_answered(page: Any, n: int, timeout_s: float = 30) -> Any:
    """The n-th (1-based) assistant message, once its badge (the answer is complete) is shown."""
    msg = page.locator(".msg.assistant").nth(n - 1)
    msg.locator(".badge").wait_for(timeout=timeout_s * 1000)
    return msg


# ------------------------------------------------------------------------------- 1. conversation
def test_two_turn_conversation_streams_and_sends_the_first_turn_as_history(
    ui: Callable[..., UI], app_factory: Callable[..., Any], live_server: Callable[..., Any], axe_script: str,
    tmp_path: Path,
) -> None:
    seen: list[Request] = []
    answers = ("Two plain pictures, one red and one green, and a short clip of colours changing.",
               "It is still red and green, with one short clip.")

    def local(req: Request) -> str:
        seen.append(req)
        return answers[1] if req.history else answers[0]

    app, proc = app_factory(local=local, backend_kw={"local_kw": {"capabilities": CONVERSATION}})
    srv = live_server(app)
    u = ui(srv.url)
    page = u.open()
    assert page.locator("#model option").all_text_contents()[:3] == [
        "hybrid: the router decides", "fastvlm (local)", "gemini (cloud)"]
    red, green = picture((220, 30, 30), (64, 48)), picture((30, 200, 60), (64, 48))
    clip = make_clip(tmp_path / "clip.mp4", [(200, 0, 0), (0, 0, 200)], seconds_each=0.4).read_bytes()
    upload(page, ("red.png", "image/png", red), ("green.png", "image/png", green), ("clip.mp4", "video/mp4", clip))
    assert page.locator("#previews .chip").count() == 3
    page.fill("#prompt", "What do you see?")
    # count how often the answer's text changes while it streams in
    page.evaluate("""() => { window.__pieces = 0;
        new MutationObserver((records) => { window.__pieces += records.length; })
            .observe(document.getElementById('messages'), { subtree: true, childList: true, characterData: true });
    }""")
    page.press("#prompt", "Enter")
    first = wait_answered(page, 1)
    assert first.locator(".text").inner_text().strip() == answers[0], page.inner_html("#messages")[:3000]
    assert page.evaluate("window.__pieces") >= 5, "the answer did not arrive piece by piece"
    user = page.locator(".msg.user").first
    assert user.locator(".thumb img").count() == 2 and user.locator(".thumb video").count() == 1
    assert "local · fastvlm-model" in first.locator(".badge").inner_text()

    page.fill("#prompt", "And now?")
    page.click("#ask")
    second = wait_answered(page, 2)
    assert second.locator(".text").inner_text().strip() == answers[1]
    call = seen[-1]
    assert call.prompt == "And now?"
    assert call.history == (Turn("user", "What do you see?", 3), Turn("assistant", answers[0], 0))
    assert [a.mime for a in call.attachments] == ["image/png", "image/png", "video/mp4"]
    assert call.attachments[0].data == red and call.attachments[2].data == clip
    assert proc.backend("gemini").calls == []

    # a thumbnail opens large
    user.locator(".thumb").first.click()
    assert page.locator("#lightbox[open] img").get_attribute("alt") == "red.png"
    assert u.axe(axe_script, "lightbox") == []
    page.keyboard.press("Escape")
    assert not page.locator("#lightbox[open]").count()

    # kept in this browser (nothing sensitive), listed, reopened after a reload, then forgotten
    u.poll("document.querySelectorAll('#conversations li').length === 1")
    assert page.locator("#conversations li").inner_text().startswith("What do you see?")
    assert u.axe(axe_script, "chat") == []
    u.shot("chat")
    page.reload()
    page.locator("#conversations li button.open").wait_for()
    page.click("#conversations li button.open")
    wait_answered(page, 2)
    assert page.locator(".msg.user").first.locator(".thumb").count() == 3
    page.click("#forget")
    u.poll("document.querySelectorAll('#conversations li').length === 0")
    stored = page.evaluate("""() => new Promise((ok) => { const r = indexedDB.open('fastvlm-hybrid');
        r.onsuccess = () => { const q = r.result.transaction('conversations').objectStore('conversations').count();
        q.onsuccess = () => ok(q.result); }; })""")
    assert stored == 0


def test_phone_and_dark_mode_chat_fits_and_passes_axe(
    ui: Callable[..., UI], app_factory: Callable[..., Any], live_server: Callable[..., Any], axe_script: str,
) -> None:
    app, _proc = app_factory(local="A red square.")
    srv = live_server(app)
    u = ui(srv.url, viewport=PHONE, scheme="dark", is_mobile=True, has_touch=True)
    page = u.open()
    assert page.evaluate("matchMedia('(prefers-color-scheme: dark)').matches")
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(15, 18, 22)", background  # the dark palette
    upload(page, ("red.png", "image/png", picture()))
    page.fill("#prompt", "What is it?")
    page.tap("#ask")
    wait_answered(page, 1)
    assert u.fits()
    assert u.axe(axe_script, "chat-phone-dark") == []
    u.shot("chat-phone-dark")


# ----------------------------------------------------------------------- 2. answers explain themselves
def test_route_explanation_draws_the_privacy_box_and_a_sensitive_chat_is_not_kept(
    ui: Callable[..., UI], app_factory: Callable[..., Any], live_server: Callable[..., Any], axe_script: str,
) -> None:
    app, proc = app_factory(local="A card.")
    srv = live_server(app)
    u = ui(srv.url)
    page = u.open()
    card = picture((255, 255, 255), CARD_SIZE, text=CARD_TEXT)
    upload(page, ("card.png", "image/png", card))
    page.fill("#prompt", "What is written here?")
    page.click("#ask")
    msg = wait_answered(page, 1)
    badge = msg.locator(".badge")
    assert badge.get_attribute("aria-expanded") == "false"
    badge.click()
    assert badge.get_attribute("aria-expanded") == "true"
    why = msg.locator(".why")
    assert "answered by fastvlm" in why.locator(".route").inner_text()
    assert why.locator("h3", has_text="Rules that fired").count() == 1
    verdict = why.locator(".privacy .verdict")
    verdict.wait_for(timeout=60_000)  # the server's OCR reads the picture (the first read loads its models)
    assert verdict.inner_text().startswith("Sensitive: kept on this machine")
    assert "payment card number" in why.locator(".privacy").inner_text()
    # the box is where the text was drawn: [42, 46, 547, 35] of 1000x300, scaled to the picture shown
    img = why.locator(".shot img")
    box = why.locator(".shot .box")
    assert box.count() == 1
    x, y, w, h = (int(v) for v in box.get_attribute("data-box").split(","))
    assert 30 <= x <= 60 and 35 <= y <= 60 and 450 <= w <= 650 and 25 <= h <= 60
    shown, drawn = img.bounding_box(), box.bounding_box()
    scale = shown["width"] / CARD_SIZE[0]
    assert abs(shown["height"] / CARD_SIZE[1] - scale) < 0.01
    assert abs(drawn["x"] - (shown["x"] + x * scale)) <= 3 and abs(drawn["y"] - (shown["y"] + y * scale)) <= 3
    assert abs(drawn["width"] - w * scale) <= 4 and abs(drawn["height"] - h * scale) <= 4
    assert u.axe(axe_script, "explanation") == []
    msg.scroll_into_view_if_needed()
    u.shot("explanation")
    page.evaluate("document.getElementById('composer').style.position = 'static'")  # not over the answer
    msg.locator(".bubble").screenshot(path=str(ARTIFACTS / "explanation-answer.png"))  # the answer alone
    page.evaluate("document.getElementById('composer').style.position = ''")
    # enlarged, the box comes along
    why.locator("figure button").click()
    assert page.locator("#lightbox[open] .shot .box").count() == 1
    page.keyboard.press("Escape")

    # the route said sensitive: the conversation is not stored, and says so, until "keep" is ticked
    notice = page.locator("#not-kept")
    notice.wait_for()
    assert "sensitive" in notice.inner_text()
    assert page.locator("#conversations li").count() == 0
    page.check("#keep")
    u.poll("document.querySelectorAll('#conversations li').length === 1")
    assert proc.backend("gemini").calls == []


# ---------------------------------------------------------------------------------- 3. setup help
def test_setup_help_says_what_to_run_when_nothing_is_ready(
    ui: Callable[..., UI], server_settings: Callable[..., Any], live_server: Callable[..., Any], axe_script: str,
) -> None:
    """The real processor with no local model downloaded and no Gemini key: /readyz is 503."""
    from fastvlm_gemini_hybrid.server import create_app

    srv = live_server(create_app(settings=server_settings()))
    u = ui(srv.url)
    page = u.open(ready="fastvlm (local): not ready")
    setup = page.locator("#setup")
    setup.wait_for()
    text = setup.inner_text()
    assert "Finish setting up" in text
    assert [c.inner_text() for c in setup.locator("code").all()] == [
        "fastvlm-hybrid models pull fastvlm-0.5b", "export GEMINI_API_KEY=...", "fastvlm-hybrid serve"]
    assert "Nothing can answer yet" in text and "fastvlm-0.5b-onnx" in text
    assert "gemini (cloud): not ready" in page.inner_text("#status")
    assert u.axe(axe_script, "setup") == []
    u.shot("setup")
    # the page still works: a question gets the server's reason, not a broken page
    upload(page, ("red.png", "image/png", picture()))
    page.fill("#prompt", "What is it?")
    page.click("#ask")
    error = last_answer(page).locator(".error")
    error.wait_for()
    assert error.inner_text().startswith("503") and "fastvlm-hybrid models pull" in error.inner_text()
    setup.get_by_role("button", name="Hide").click()
    assert setup.is_hidden()


def test_setup_help_names_only_what_is_missing(
    ui: Callable[..., UI], app_factory: Callable[..., Any], live_server: Callable[..., Any],
) -> None:
    """A local model that answers and a cloud backend without a key: the page says the cloud is missing and
    that answers stay on this machine; questions are answered."""
    from fastvlm_gemini_hybrid.backends.gemini import GeminiBackend

    app, _proc = app_factory(local="A red square.", cloud=GeminiBackend())
    srv = live_server(app)
    u = ui(srv.url)
    page = u.open()
    setup = page.locator("#setup")
    setup.wait_for()
    commands = [c.inner_text() for c in setup.locator("code").all()]
    assert commands == ["export GEMINI_API_KEY=...", "fastvlm-hybrid serve"]
    assert "nothing goes to the cloud" in setup.inner_text()
    page.fill("#prompt", "Hello?")
    page.click("#ask")
    assert wait_answered(page, 1).locator(".text").inner_text() == "A red square."


# ------------------------------------------------------------------------------------- 4. dashboard
def test_dashboard_draws_charts_from_metrics_after_some_requests(
    ui: Callable[..., UI], app_factory: Callable[..., Any], live_server: Callable[..., Any], axe_script: str,
) -> None:
    import httpx

    app, proc = app_factory(local="local answer", backend_kw={"local_kw": {"delay_s": 0.02}})
    srv = live_server(app)
    red = picture()
    for i, mode in enumerate(["local-only", "local-only", "cloud-only", "local-only"]):
        color = picture((10 * i, 200, 30)) if i < 3 else red
        resp = httpx.post(srv.url + "/v1/analyze", files={"file": ("p.png", color if i < 3 else red)},
                          data={"prompt": "What is this?", "mode": mode}, timeout=30)
        assert resp.status_code == 200, resp.text
    assert httpx.post(srv.url + "/v1/analyze", files={"file": ("p.png", red)},  # the same again: a cache hit
                      data={"prompt": "What is this?", "mode": "local-only"}, timeout=30).json()["cached"] is True
    u = ui(srv.url)
    page = u.open("dashboard")
    page.locator("#kpis .kpi", has_text="backend calls").wait_for()
    assert page.locator("#kpis .kpi").first.inner_text().split("\n")[0] == "4"
    # latency: bars with height for both backends, and the medians in the legend
    u.poll("[...document.querySelectorAll('#latency-chart rect.bar')]"
           ".filter(r => +r.getAttribute('height') > 0).length >= 2")
    assert "fastvlm (median ≤" in page.inner_text("#latency-legend") and "gemini" in page.inner_text("#latency-legend")
    shares = {r.get_attribute("data-name"): float(r.get_attribute("width"))
              for r in page.locator("#share-chart rect.part").all()}
    assert set(shares) == {"fastvlm", "gemini"} and abs(shares["fastvlm"] / shares["gemini"] - 3) < 0.01
    assert "fastvlm 75%" in page.get_attribute("#share-chart", "aria-label")
    assert page.inner_text("#cache-text") == "hits: 1 of 5 lookups"
    # requests per minute needs two reads; then one more request shows up as a rate above zero
    httpx.post(srv.url + "/v1/analyze", files={"file": ("p.png", picture((1, 2, 3)))},
               data={"prompt": "Again?", "mode": "local-only"}, timeout=30)
    u.poll("document.querySelector('#rate-chart path.line') !== null", timeout_s=10)
    u.poll("document.querySelector('#kpis .kpi:nth-child(2) b').textContent !== '–' && "
           "document.querySelector('#kpis .kpi:nth-child(2) b').textContent !== '0.0'", timeout_s=10)
    assert page.locator("#queue-chart path.line").count() == 2
    assert u.axe(axe_script, "dashboard") == []
    u.shot("dashboard", full_page=True)
    assert len(proc.backend("fastvlm").calls) == 4


# ----------------------------------------------------------------------------------- 5. live camera
def test_live_camera_caption_streams_over_chromiums_synthetic_camera(
    ui: Callable[..., UI], app_factory: Callable[..., Any], live_server: Callable[..., Any], axe_script: str,
) -> None:
    import io

    from PIL import Image

    sizes: list[tuple[int, int]] = []

    def local(req: Request) -> str:
        image = Image.open(io.BytesIO(req.attachments[0].data))
        sizes.append(image.size)
        return f"Frame {len(sizes)}: a test pattern, {image.size[0]} by {image.size[1]}."

    app, proc = app_factory(local=local)
    srv = live_server(app)
    u = ui(srv.url, viewport=PHONE, is_mobile=True, has_touch=True)
    page = u.open("camera")
    page.select_option("#cam-model", "fastvlm")
    page.select_option("#every", "0")  # as fast as it can
    page.check("#live")  # starts the camera too
    u.poll("document.getElementById('cam').readyState >= 2")
    u.poll("Number(document.getElementById('cam-count').textContent) >= 3", timeout_s=20)
    page.uncheck("#live")
    caption = page.inner_text("#caption")
    assert caption.startswith("Frame ") and "a test pattern" in caption
    assert page.inner_text("#cam-path") == "server" and page.inner_text("#cam-latency").endswith("ms")
    assert page.inner_text("#cam-route").startswith("fastvlm · local")
    assert page.inner_text("#cam-hud").startswith("server · ")
    width, height = page.evaluate("(v => [v.videoWidth, v.videoHeight])(document.getElementById('cam'))")
    assert width > 0 and sizes[0] == (width, height)  # each frame is the camera's picture, full size
    # the caption lies over the lower part of the picture, and the page fits the phone
    stage, text = page.locator("#stage").bounding_box(), page.locator("#caption").bounding_box()
    assert stage["y"] < text["y"] and abs((text["y"] + text["height"]) - (stage["y"] + stage["height"])) < 2
    assert u.fits()
    assert all(c.prompt == "Describe what you see in one sentence." for c in proc.backend("fastvlm").calls)
    assert proc.backend("gemini").calls == []
    assert u.axe(axe_script, "camera") == []
    u.shot("camera-phone")
    page.click("#camera")  # stop
    assert page.evaluate("document.getElementById('cam').srcObject === null")


# ------------------------------------------------------------------------------------------ 6. medical
def test_medical_view_reads_a_dicom_study_into_a_deidentified_report(
    ui: Callable[..., UI], app_factory: Callable[..., Any], live_server: Callable[..., Any], axe_script: str,
    tmp_path: Path,
) -> None:
    pytest.importorskip("pydicom")
    from medical.conftest import LEAK_STRINGS, findings_json, write_ct_series

    write_ct_series(tmp_path / "study", 3)  # file names and tags carry made-up identifying data
    slices = sorted((tmp_path / "study").iterdir())
    app, proc = app_factory(local=findings_json("Large left pneumothorax", impression="Pneumothorax."),
                            cloud=findings_json("cloud answer"))
    srv = live_server(app)
    u = ui(srv.url)
    page = u.open("medical")
    page.locator("#med-modality option", has_text="CT").wait_for(state="attached")
    page.set_input_files("#med-files", files=[str(p) for p in slices])
    assert page.inner_text("#med-chosen").startswith("3 file(s)")
    page.click("#med-run")
    study = page.locator("#med-report article.study")
    study.wait_for(timeout=60_000)
    text = study.inner_text()
    assert study.locator(".severity").inner_text().lower() == "critical"
    assert "Large left pneumothorax" in text and "Pneumothorax." in text
    assert "Nothing left this machine: answered by fastvlm" in text
    assert "AI-generated draft for review by a qualified clinician" in study.locator(".disclaimer").inner_text()
    audit = study.locator("tr", has_text="Audit record").locator("code").inner_text()
    assert len(audit) == 32 and audit in (proc.settings.home / "audit.jsonl").read_text()  # the record it wrote
    assert "The model read" in text and "lung window" in text
    page_text = page.inner_text("body").lower()
    assert not [s for s in LEAK_STRINGS if s.lower() in page_text], "the page shows identifying data"
    assert proc.backend("gemini").calls == [] and proc.backend("fastvlm").calls[0].sensitive is True
    with page.expect_download() as download:
        study.locator("button.download").click()
    saved = json.loads(Path(download.value.path()).read_text())
    assert saved["output"]["severity"] == "critical" and saved["output"]["deidentified"] is True
    assert u.axe(axe_script, "medical") == []
    u.shot("medical", full_page=True)


def test_medical_view_shows_indeterminate_as_such(
    ui: Callable[..., UI], app_factory: Callable[..., Any], live_server: Callable[..., Any], tmp_path: Path,
) -> None:
    pytest.importorskip("pydicom")
    from medical.conftest import write_ct_series

    write_ct_series(tmp_path / "study", 2)
    app, _proc = app_factory(local="I cannot tell what this shows.")  # no JSON: the severity cannot be graded
    srv = live_server(app)
    u = ui(srv.url)
    page = u.open("medical")
    page.set_input_files("#med-files", files=[str(p) for p in sorted((tmp_path / "study").iterdir())])
    page.click("#med-run")
    study = page.locator("#med-report article.study")
    study.wait_for(timeout=60_000)
    assert study.locator(".severity").get_attribute("data-severity") == "indeterminate"
    assert study.locator(".indeterminate").inner_text().startswith("Indeterminate: the severity could not be graded")


def write_varied_ct_series(folder: Path, n: int) -> list[Path]:
    """`n` CT slices from tests/medical/conftest.py's builders whose pixels differ slice by slice (the
    phantom's bone insert grows), so a test can tell one rendered slice from the next."""
    from pydicom.uid import generate_uid

    from medical.conftest import hu_phantom, make_ct_slice

    folder.mkdir(parents=True, exist_ok=True)
    study_uid, series_uid = generate_uid(), generate_uid()
    for i in range(n):
        hu = hu_phantom()
        hu[8:12 + 8 * i, 8:16] = 1000  # a bone bar, longer on each slice
        make_ct_slice(hu, study_uid=study_uid, series_uid=series_uid, index=i).save_as(
            folder / f"Quillfeather_{i:03d}.dcm", enforce_file_format=True)
    return sorted(folder.iterdir())


def png_text_chunks(png: bytes) -> list[bytes]:
    """The payloads of a PNG's text chunks (tEXt, zTXt, iTXt) and any eXIf chunk."""
    import struct

    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    found, pos = [], 8
    while pos < len(png):
        (length,), kind = struct.unpack(">I", png[pos:pos + 4]), png[pos + 4:pos + 8]
        if kind in (b"tEXt", b"zTXt", b"iTXt", b"eXIf"):
            found.append(png[pos + 8:pos + 8 + length])
        pos += 12 + length
    return found


def test_medical_render_api_answers_pixels_only_and_refuses_bad_input(
    app_factory: Callable[..., Any], tmp_path: Path,
) -> None:
    pytest.importorskip("pydicom")
    from fastapi.testclient import TestClient

    from medical.conftest import LEAK_STRINGS

    from .conftest import assert_error

    slices = write_varied_ct_series(tmp_path / "study", 3)
    parts = [("file", (p.name, p.read_bytes(), "application/dicom")) for p in slices]
    app, proc = app_factory(max_upload_bytes=1 << 20)
    with TestClient(app) as client:
        info = client.post("/v1/medical/render", files=parts, data={"info": "true"})
        assert info.status_code == 200, info.text
        assert info.json() == {"slices": 3, "presets": ["soft-tissue", "lung", "bone", "brain", "subdural", "liver",
                                                        "default"], "window": "lung", "slice": 1, "modality": "CT",
                               "skipped": 0}
        pngs = {}
        for window, index in (("lung", 0), ("lung", 2), ("bone", 0), ("default", 0)):
            resp = client.post("/v1/medical/render", files=parts, data={"window": window, "slice": str(index)})
            assert resp.status_code == 200, resp.text
            assert resp.headers["content-type"] == "image/png"
            assert (resp.headers["x-window"], resp.headers["x-slice"], resp.headers["x-slice-count"]) == (
                window, str(index), "3")
            assert png_text_chunks(resp.content) == []  # pixels only: no text chunk, no EXIF
            assert not [s for s in LEAK_STRINGS if s.encode() in resp.content]
            pngs[window, index] = resp.content
        assert len(set(pngs.values())) == 4  # another slice, another window: other pixels
        assert_error(client.post("/v1/medical/render", files=parts, data={"window": "sunset"}), 400, "bad_input")
        assert_error(client.post("/v1/medical/render", files=parts, data={"slice": "3"}), 400, "bad_input")
        assert_error(client.post("/v1/medical/render", files={"file": ("a.png", picture(), "image/png")}),
                     400, "bad_input")
        assert_error(client.post("/v1/medical/render", files={"file": ("big.dcm", b"x" * (1 << 20) + b"x")}),
                     413, "media_too_large")
    assert proc.backend("fastvlm").calls == [] and proc.backend("gemini").calls == []  # no model was asked


def test_medical_view_shows_the_slices_with_a_slider_and_window_presets(
    ui: Callable[..., UI], app_factory: Callable[..., Any], live_server: Callable[..., Any], axe_script: str,
    tmp_path: Path,
) -> None:
    pytest.importorskip("pydicom")
    from medical.conftest import findings_json

    slices = write_varied_ct_series(tmp_path / "study", 4)
    app, _proc = app_factory(local=findings_json("No acute finding", impression="Normal study."))
    srv = live_server(app)
    u = ui(srv.url)
    page = u.open("medical")
    page.set_input_files("#med-files", files=[str(p) for p in slices])
    page.click("#med-run")
    page.locator("#med-report article.study").wait_for(timeout=60_000)
    image = page.locator("#med-slice")
    u.poll("document.getElementById('med-slice').dataset.slice === '2' && "
           "document.getElementById('med-slice').complete")
    assert image.get_attribute("alt") == "Slice 3 of 4, lung window"
    assert page.inner_text("#med-window") == "Window: lung"
    assert page.inner_text("#med-slice-label") == "Slice 3 of 4"
    assert page.locator("#med-presets button[aria-pressed=true]").inner_text() == "lung"
    assert "nothing leaves the machine" in page.inner_text("#med-viewer")
    first_src, first_shot = image.get_attribute("src"), image.screenshot()

    # the slider, by keyboard: one slice down
    page.focus("#med-slider")
    page.keyboard.press("ArrowLeft")
    u.poll("document.getElementById('med-slice').dataset.slice === '1' && "
           "document.getElementById('med-slice').complete")
    assert page.get_attribute("#med-slider", "aria-valuetext") == "Slice 2 of 4"
    moved_src, moved_shot = image.get_attribute("src"), image.screenshot()
    assert moved_src != first_src and moved_shot != first_shot

    # a preset: the same slice through the bone window
    page.click("#med-presets button[data-window=bone]")
    u.poll("document.getElementById('med-slice').dataset.window === 'bone' && "
           "document.getElementById('med-slice').complete")
    assert page.inner_text("#med-window") == "Window: bone"
    assert page.locator("#med-presets button[aria-pressed=true]").inner_text() == "bone"
    assert image.get_attribute("alt") == "Slice 2 of 4, bone window"
    assert image.screenshot() != moved_shot
    assert u.axe(axe_script, "medical-slices") == []
    u.shot("medical-slices", full_page=True)


# ------------------------------------------------------------------------------------- 7. surveillance
def test_surveillance_zones_drawn_on_the_frame_and_events_on_the_timeline(
    ui: Callable[..., UI], app_factory: Callable[..., Any], live_server: Callable[..., Any], axe_script: str,
    tmp_path: Path,
) -> None:
    pytest.importorskip("av")
    pytest.importorskip("cv2")
    import yaml

    from video import synth

    clip = synth.make_clip(tmp_path / "walker.mp4", 12.0, synth.walker())
    app, proc = app_factory()
    srv = live_server(app)
    u = ui(srv.url)
    page = u.open("surveillance")
    page.set_input_files("#surv-file", files=[str(clip)])
    u.poll("document.getElementById('surv-player').dataset.ready === '1'")
    assert page.get_attribute("#surv-overlay", "viewBox") == f"0 0 {synth.W} {synth.H}"
    # draw the loading dock: click its four corners on the picture (video pixels -> screen through the SVG)
    page.click("#zone-draw")
    matrix = page.evaluate("(m => [m.a, m.d, m.e, m.f])(document.getElementById('surv-overlay').getScreenCTM())")
    corners = [(synth.ZONE_X, 0), (319, 0), (319, 239), (synth.ZONE_X, 239)]
    for x, y in corners:
        page.mouse.click(matrix[2] + matrix[0] * (x + 0.5), matrix[3] + matrix[1] * (y + 0.5))
    page.keyboard.press("Enter")
    assert page.locator("#surv-overlay polygon").count() == 1
    zone = page.locator("#zones li")
    zone.get_by_label("Name of zone 1").fill("loading-dock")
    zone.get_by_label("Name of zone 1").press("Tab")
    zone.get_by_label("restricted").check()
    zone.get_by_label("Loitering seconds for loading-dock").fill("2")
    zone.get_by_label("Loitering seconds for loading-dock").press("Tab")
    written = yaml.safe_load(page.input_value("#zones-yaml"))
    assert written == yaml.safe_load(synth.ZONES_YAML)  # the file the CLI reads, byte for byte in meaning
    # edit: drag a corner, then put it back through the YAML editor
    x, y = corners[1]
    page.mouse.move(matrix[2] + matrix[0] * (x + 0.5), matrix[3] + matrix[1] * (y + 0.5))
    page.mouse.down()
    page.mouse.move(matrix[2] + matrix[0] * 300, matrix[3] + matrix[1] * 20, steps=4)
    page.mouse.up()
    moved = yaml.safe_load(page.input_value("#zones-yaml"))["zones"][0]["polygon"][1]
    assert abs(moved[0] - 300) <= 1 and abs(moved[1] - 20) <= 1
    page.fill("#zones-yaml", synth.ZONES_YAML)
    page.click("#zones-apply")
    assert yaml.safe_load(page.input_value("#zones-yaml")) == yaml.safe_load(synth.ZONES_YAML)
    assert u.axe(axe_script, "surveillance-zones") == []

    page.click("#surv-run")
    page.locator("#surv-status", has_text="succeeded").wait_for(timeout=90_000)
    items = page.locator("#surv-events li")
    assert [t.split(" · ")[1].split("\n")[0] for t in items.all_inner_texts()] == [
        "motion", "zone enter in loading-dock", "loitering in loading-dock", "zone exit in loading-dock"]
    assert page.locator("#surv-timeline .mark").count() == 4
    # a click on the entry seeks the video there and draws the walker's box
    page.locator("#surv-timeline .mark").nth(1).click()
    u.poll("Math.abs(document.getElementById('surv-video').currentTime - "
           f"{synth.crossing_time(synth.ZONE_X)}) < 0.6")
    box = page.locator("#surv-overlay rect.event-box")
    assert box.count() == 1 and float(box.get_attribute("width")) > 10
    assert page.inner_text("#surv-detail").startswith("zone enter in loading-dock at 0:0")
    assert page.locator("#surv-events li button").nth(1).get_attribute("aria-pressed") == "true"
    assert proc.backend("fastvlm").calls == [] and proc.backend("gemini").calls == []  # describe was off
    assert u.axe(axe_script, "surveillance") == []
    u.shot("surveillance", full_page=True)


def test_surveillance_watches_a_stream_url_and_says_when_streams_are_off(
    ui: Callable[..., UI], app_factory: Callable[..., Any], live_server: Callable[..., Any], axe_script: str,
    loopback_stream: Callable[..., Any],
) -> None:
    from video import synth

    # streams are off by default: the view shows the server's refusal as setup help, naming the setting
    u = ui(live_server().url)
    page = u.open("surveillance")
    page.fill("#zones-yaml", synth.ZONES_YAML)
    page.click("#zones-apply")
    assert page.is_disabled("#surv-run")
    page.fill("#surv-stream", "rtsp://camera.lan/stream")
    page.click("#surv-run")
    setup = page.locator("#surv-setup")
    setup.wait_for()
    assert setup.locator("h3").inner_text() == "Live streams are off on this server"
    assert "FASTVLM_HYBRID_STREAM_SOURCES=true" in setup.locator("code").all_inner_texts()
    assert page.inner_text("#surv-error") == "" and page.locator("#surv-events li").count() == 0
    assert u.axe(axe_script, "surveillance-streams-off") == []
    u.shot("surveillance-streams-off")

    # on, with the loopback stream's host and port listed: typed in, run from the keyboard, alerts as they come
    stream = loopback_stream(speed=1.0)
    app, proc = app_factory(stream_sources=True, stream_allowed_hosts=[f"127.0.0.1:{stream.port}"])
    u = ui(live_server(app).url)
    page = u.open("surveillance")
    page.fill("#zones-yaml", synth.ZONES_YAML)
    page.click("#zones-apply")
    page.get_by_label("Stream URL").fill(stream.url)
    page.get_by_label("Duration (s)").fill("5")
    page.focus("#surv-run")
    page.keyboard.press("Enter")
    # the first alert is on the timeline while the job still runs
    u.poll("document.querySelectorAll('#surv-timeline .mark').length > 0 && "
           "document.getElementById('surv-status').textContent.includes('running')", timeout_s=30)
    page.locator("#surv-status", has_text="succeeded").wait_for(timeout=60_000)
    kinds = [t.split(" · ")[1].split("\n")[0] for t in page.locator("#surv-events li").all_inner_texts()]
    assert kinds[:2] == ["motion", "zone enter in loading-dock"], kinds
    assert page.locator("#surv-timeline .mark").count() == len(kinds)
    assert stream.connections == 1 and page.locator("#surv-setup").is_hidden()
    # no local video to seek: a click selects the alert, shows its time and reason and draws its box
    page.locator("#surv-timeline .mark").nth(1).click()
    assert page.inner_text("#surv-detail h3").startswith("zone enter in loading-dock at 0:0")
    assert page.inner_text("#surv-detail h3").endswith("of the stream")
    assert page.evaluate("document.getElementById('surv-video').currentTime") == 0
    box = page.locator("#surv-overlay rect.event-box")
    assert box.count() == 1 and float(box.get_attribute("width")) > 10
    assert page.locator("#surv-events li button").nth(1).get_attribute("aria-pressed") == "true"
    assert proc.backend("fastvlm").calls == [] and proc.backend("gemini").calls == []
    assert u.axe(axe_script, "surveillance-stream") == []
    u.shot("surveillance-stream", full_page=True)


# ------------------------------------------------------------------------------- every view, phone and dark
@pytest.mark.parametrize("view", ["chat", "camera", "dashboard", "medical", "surveillance"])
def test_every_view_fits_a_phone_in_dark_mode_and_passes_axe(
    view: str, ui: Callable[..., UI], app_factory: Callable[..., Any], live_server: Callable[..., Any],
    axe_script: str,
) -> None:
    app, _proc = app_factory()
    srv = live_server(app)
    u = ui(srv.url, viewport=PHONE, scheme="dark", is_mobile=True, has_touch=True)
    page = u.open(view)
    assert page.locator("#nav a[aria-current=page]").get_attribute("href") == f"#/{view}"
    page.wait_for_timeout(300)  # let the view draw (the dashboard reads /metrics once)
    assert u.fits(), f"{view} is wider than a phone"
    assert u.axe(axe_script, f"{view}-phone-dark") == []
    # the same view on a desktop, light
    page.set_viewport_size(DESKTOP)
    page.emulate_media(color_scheme="light")
    assert u.fits()
    assert u.axe(axe_script, f"{view}-desktop-light") == []


def test_settings_dialog_is_keyboard_operable(
    ui: Callable[..., UI], app_factory: Callable[..., Any], live_server: Callable[..., Any], axe_script: str,
) -> None:
    app, proc = app_factory()
    srv = live_server(app)
    u = ui(srv.url)
    page = u.open()
    page.focus("#open-settings")
    page.keyboard.press("Enter")
    dialog = page.locator("#settings[open]")
    dialog.wait_for()
    assert page.evaluate("document.activeElement.closest('dialog')?.id") == "settings"  # focus moved into it
    page.select_option("#mode", "local-only")
    assert u.axe(axe_script, "settings") == []
    page.keyboard.press("Escape")
    assert not dialog.count()
    page.fill("#prompt", "Hello?")
    page.keyboard.press("Enter")
    wait_answered(page, 1)
    assert proc.backend("fastvlm").calls[-1].mode.value == "local-only"
    page.reload()  # the settings are kept in this browser
    page.locator("#status", has_text="fastvlm (local): ready").wait_for()
    assert page.input_value("#mode") == "local-only"
