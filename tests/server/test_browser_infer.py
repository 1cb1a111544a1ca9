"""In-browser FastVLM: the tiny ONNX bundle, its parity with PyTorch, vendoring, and the web UI in chromium.

The default run checks the bundle builder (layout transformers.js expects, ONNX Runtime greedy output
equal to the PyTorch model's), `pull_onnx` against a fake hub, and vendoring. Tests marked `browser`
drive Debian's chromium through Playwright against the real server: WASM must answer exactly what the
PyTorch model answers; WebGPU runs where chromium exposes an adapter (headless chromium with
--enable-unsafe-webgpu gets SwiftShader's software adapter) and otherwise the UI must say so and use
WASM; with no bundle the UI falls back to the server API. A route guard aborts any request that is
not to 127.0.0.1 and the tests assert there were none.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from fastvlm_gemini_hybrid.errors import BackendUnavailableError, BadInputError
from fastvlm_gemini_hybrid.server import onnx_bundle, vendor_web
from synth_media import blank, picture

CHROMIUM = os.environ.get("FASTVLM_HYBRID_CHROMIUM", "/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
BUNDLE = "fastvlm-tiny-onnx"
PROMPT = "Describe this image."
REF_TOKENS = 64
#: The picture asked about: 256x256 (the tiny model's input size), so browser and PIL preprocessing agree
#: bit for bit.
GREEN, SIDE = (20, 200, 40), (256, 256)


# ------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A tiny PyTorch FastVLM, its ONNX bundle, and the PyTorch greedy answer the browser must match."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    pytest.importorskip("onnxscript", reason="the ONNX exporter needs the `browser` extra (onnxscript)")
    import torch
    import transformers

    from fastvlm_gemini_hybrid.models.tiny import build_tiny_model

    root = tmp_path_factory.mktemp("tiny-onnx")
    source = build_tiny_model(root / "torch")
    bundle = onnx_bundle.make_tiny_onnx(root / BUNDLE, source=source)
    model = transformers.FastVlmForConditionalGeneration.from_pretrained(source).eval()
    processor = transformers.AutoProcessor.from_pretrained(source)
    text = processor.apply_chat_template([{"role": "user", "content": f"<image>{PROMPT}"}],
                                         add_generation_prompt=True, tokenize=False)
    inputs = processor(images=blank(GREEN, SIDE), text=text, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=REF_TOKENS, do_sample=False)
    ids = out[0, inputs["input_ids"].shape[1]:].tolist()
    return {"source": source, "bundle": bundle, "ids": ids, "inputs": inputs, "tokenizer": processor.tokenizer,
            "model": model}


def expected_text(tiny: dict[str, Any], tokens: int) -> str:
    return tiny["tokenizer"].decode(tiny["ids"][:tokens], skip_special_tokens=True)


# --------------------------------------------------------------------------- bundle (default run)
def test_tiny_bundle_has_the_layout_transformers_js_loads(tiny: dict[str, Any]) -> None:
    bundle: Path = tiny["bundle"]
    assert onnx_bundle.bundle_problems(bundle) == []
    assert sorted(p.name for p in (bundle / "onnx").iterdir()) == [
        "decoder_model_merged.onnx", "embed_tokens.onnx", "vision_encoder.onnx"]
    config = json.loads((bundle / "config.json").read_text())
    assert config["model_type"] == "llava_qwen2"
    assert config["transformers.js_config"]["dtype"] == {s: "fp32" for s in onnx_bundle.SESSIONS}
    assert config["image_token_index"] == tiny["model"].config.image_token_id
    assert json.loads((bundle / "preprocessor_config.json").read_text())["processor_class"] == "LlavaProcessor"
    assert "<|im_start|>" in json.loads((bundle / "tokenizer_config.json").read_text())["chat_template"]
    assert json.loads((bundle / onnx_bundle.MANIFEST).read_text())["tiny"] is True


def test_tiny_bundle_generates_what_pytorch_generates(tiny: dict[str, Any]) -> None:
    """The three sessions, driven the way transformers.js drives them, give PyTorch's greedy tokens."""
    ort = pytest.importorskip("onnxruntime")
    import numpy as np

    onnx_dir, cfg = tiny["bundle"] / "onnx", json.loads((tiny["bundle"] / "config.json").read_text())
    vision, embed, decoder = (ort.InferenceSession(str(onnx_dir / f"{s}.onnx")) for s in onnx_bundle.SESSIONS)
    ids = tiny["inputs"]["input_ids"].numpy()
    embeds = embed.run(None, {"input_ids": ids})[0]
    features = vision.run(None, {"pixel_values": tiny["inputs"]["pixel_values"].numpy()})[0]
    embeds[0, ids[0] == cfg["image_token_index"]] = features.reshape(-1, embeds.shape[-1])
    shape = (1, cfg["num_key_value_heads"], 0, cfg["head_dim"])
    past = {f"past_key_values.{i}.{kv}": np.zeros(shape, np.float32)
            for i in range(cfg["num_hidden_layers"]) for kv in ("key", "value")}
    got: list[int] = []
    while len(got) < 16:
        done = past["past_key_values.0.key"].shape[2]
        n = embeds.shape[1]
        out = decoder.run(None, {"inputs_embeds": embeds, "attention_mask": np.ones((1, done + n), np.int64),
                                 "position_ids": np.arange(done, done + n, dtype=np.int64)[None], **past})
        got.append(int(out[0][0, -1].argmax()))
        past = dict(zip(past, out[1:], strict=True))
        embeds = embed.run(None, {"input_ids": np.array([[got[-1]]], np.int64)})[0]
    assert got == tiny["ids"][:16]


def test_make_tiny_onnx_refuses_a_non_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("x")
    with pytest.raises(BadInputError, match="not empty"):
        onnx_bundle.make_tiny_onnx(tmp_path)


# ------------------------------------------------------------------------------- pull_onnx (fake hub)
@pytest.fixture
def fake_hub(monkeypatch: pytest.MonkeyPatch, tiny: dict[str, Any]) -> list[dict[str, Any]]:
    """Replace snapshot_download with a fake that serves the tiny bundle under every dtype's file name."""
    hub = pytest.importorskip("huggingface_hub")
    calls: list[dict[str, Any]] = []

    def fake_snapshot_download(repo_id: str, *, local_dir: Path, allow_patterns: list[str], **kw: Any) -> str:
        calls.append({"repo_id": repo_id, "allow_patterns": allow_patterns, **kw})
        if repo_id == "nobody/missing":
            import httpx

            response = httpx.Response(404, request=httpx.Request("GET", "https://hub.invalid/api/models/nobody"))
            raise hub.errors.RepositoryNotFoundError("404 not found", response=response)
        for name in onnx_bundle.CONFIG_FILES:
            if (tiny["bundle"] / name).is_file() and name in allow_patterns:
                shutil.copy(tiny["bundle"] / name, Path(local_dir) / name)
        (Path(local_dir) / "onnx").mkdir(exist_ok=True)
        for pattern in allow_patterns:
            if not (pattern.startswith("onnx/") and pattern.endswith(".onnx")):
                continue
            session = next(s for s in onnx_bundle.SESSIONS if pattern.startswith(f"onnx/{s}"))
            if repo_id == "someone/partial" and session == "decoder_model_merged":
                continue  # an interrupted or mismatched download
            shutil.copy(tiny["bundle"] / "onnx" / f"{session}.onnx", Path(local_dir) / pattern)
        return str(local_dir)

    monkeypatch.setattr(hub, "snapshot_download", fake_snapshot_download)
    return calls


def test_pull_onnx_fetches_one_variant_per_session_and_records_it(tmp_path: Path, fake_hub: list[Any]) -> None:
    dest = onnx_bundle.pull_onnx("fastvlm-0.5b-onnx", tmp_path / "b", progress=False)
    assert fake_hub[0]["repo_id"] == "onnx-community/FastVLM-0.5B-ONNX"
    patterns = fake_hub[0]["allow_patterns"]
    for rel in ("onnx/vision_encoder_q4.onnx", "onnx/embed_tokens_fp16.onnx", "onnx/decoder_model_merged_q4.onnx",
                "tokenizer.json", "preprocessor_config.json"):
        assert rel in patterns
    assert not any(p.startswith("onnx/decoder_model_merged.onnx") for p in patterns)  # not the 2 GB fp32
    config = json.loads((dest / "config.json").read_text())
    assert config["transformers.js_config"]["dtype"]["decoder_model_merged"] == "q4"
    assert onnx_bundle.bundle_problems(dest) == []
    assert json.loads((dest / onnx_bundle.MANIFEST).read_text())["tiny"] is False


def test_pull_onnx_errors_are_one_clear_line(tmp_path: Path, fake_hub: list[Any]) -> None:
    with pytest.raises(BadInputError, match="unknown ONNX model"):
        onnx_bundle.pull_onnx("fastvlm-9b-onnx", tmp_path / "a")
    with pytest.raises(BadInputError, match="no such model"):
        onnx_bundle.pull_onnx("nobody/missing", tmp_path / "b")
    with pytest.raises(BadInputError, match="unknown ONNX dtype"):
        onnx_bundle.pull_onnx("fastvlm-0.5b-onnx", tmp_path / "c", dtypes={"vision_encoder": "q3"})


def test_pull_onnx_reports_an_incomplete_download(tmp_path: Path, fake_hub: list[Any]) -> None:
    with pytest.raises(BackendUnavailableError, match=r"missing onnx/decoder_model_merged_int8\.onnx"):
        onnx_bundle.pull_onnx("someone/partial", tmp_path / "d", dtypes={"decoder_model_merged": "int8"})


# ---------------------------------------------------------------------------------------- vendoring
def test_vendor_copies_the_three_files_and_names_what_is_missing(tmp_path: Path) -> None:
    nm = tmp_path / "node_modules" / "@huggingface" / "transformers" / "dist"
    nm.mkdir(parents=True)
    dest = tmp_path / "vendor"
    assert vendor_web.missing(dest) == vendor_web.vendored_names()
    for i, name in enumerate(vendor_web.vendored_names()):
        (nm / name).write_bytes(bytes([i]) * (i + 1))
    copied = vendor_web.vendor(tmp_path / "node_modules", dest)
    assert [p.name for p in copied] == vendor_web.vendored_names() and vendor_web.missing(dest) == []
    wasm = "ort-wasm-simd-threaded.jsep.wasm"
    assert (dest / wasm).read_bytes() == (nm / wasm).read_bytes()
    (nm / "transformers.min.js").unlink()
    with pytest.raises(SystemExit, match=r"vendor-web\.sh"):
        vendor_web.vendor(tmp_path / "node_modules", tmp_path / "v2")


def test_server_lists_and_serves_the_bundle(tiny: dict[str, Any], app_factory: Callable[..., Any],
                                            server_settings: Callable[..., Any]) -> None:
    from fastapi.testclient import TestClient

    install(tiny, server_settings().models_dir)
    app, _proc = app_factory()
    with TestClient(app) as client:
        assert BUNDLE in client.get("/readyz").json()["browser_models"]
        resp = client.get(f"/models/{BUNDLE}/onnx/decoder_model_merged.onnx")
        assert resp.status_code == 200
        assert resp.content == (tiny["bundle"] / "onnx" / "decoder_model_merged.onnx").read_bytes()


def install(tiny: dict[str, Any], models_dir: Path) -> None:
    """Copy (not link: StaticFiles refuses paths that resolve outside its directory) into <home>/models/onnx."""
    shutil.copytree(tiny["bundle"], models_dir / "onnx" / BUNDLE, dirs_exist_ok=True)


# ------------------------------------------------------------------------------------------ browser
@pytest.fixture(scope="module")
def vendored() -> None:
    """Vendor transformers.js + ONNX Runtime wasm if needed; skip only when npm is unavailable."""
    if not vendor_web.missing():
        return
    script = ROOT / "scripts" / "vendor-web.sh"
    if shutil.which("npm") is None or not script.is_file():
        pytest.skip("transformers.js is not vendored and npm is unavailable to vendor it (scripts/vendor-web.sh)")
    subprocess.run([str(script)], check=True, timeout=600, env={**os.environ, "PY": sys.executable})
    assert vendor_web.missing() == []


@pytest.fixture(scope="module")
def pw() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api")
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"no chromium at {CHROMIUM} (.ci/install-browser.sh installs Debian's)")
    with sync_api.sync_playwright() as p:
        yield p


def launch(pw: Any, *, webgpu: bool) -> Any:
    args = ["--no-sandbox"] + (["--enable-unsafe-webgpu"] if webgpu else [])
    return pw.chromium.launch(executable_path=CHROMIUM, args=args)


def open_ui(browser: Any, url: str, seen: list[str]) -> Any:
    """A page whose every request is recorded, and aborted unless it is to 127.0.0.1."""
    page = browser.new_page()

    def guard(route: Any) -> None:
        seen.append(route.request.url)
        parsed = urlparse(route.request.url)
        if parsed.scheme in ("data", "blob") or parsed.hostname == "127.0.0.1":
            route.continue_()
        else:
            route.abort()

    page.route("**/*", guard)
    page.goto(url + "/")
    page.locator("#webgpu", has_text="WebGPU: ").wait_for()
    return page


def ask(page: Any, engine: str, max_tokens: int, timeout_s: float = 60) -> dict[str, str]:
    page.select_option("#model", f"browser:{engine}")
    page.click("#open-settings")
    page.fill("#max-tokens", str(max_tokens))
    page.click("#close-settings")
    page.fill("#prompt", PROMPT)
    green = {"name": "green.png", "mimeType": "image/png", "buffer": picture(GREEN, SIDE)}
    page.set_input_files("#files", files=[green])
    page.click("#ask")
    answer = page.locator(".msg.assistant").last
    answer.locator(".timing", has_text="path: ").wait_for(state="attached", timeout=timeout_s * 1000)

    def text(selector: str) -> str:
        found = answer.locator(selector)
        return (found.text_content() or "") if found.count() else ""

    return {"answer": text(".text"), "route": text(".route"), "timing": text(".timing"), "fallback": text(".fallback"),
            "error": text(".error"), "webgpu": page.text_content("#webgpu") or ""}


def only_local(seen: list[str]) -> set[str | None]:
    return {urlparse(u).hostname for u in seen if urlparse(u).scheme.startswith("http")}


@pytest.fixture
def served(tiny: dict[str, Any], vendored: None, server_settings: Callable[..., Any], app_factory: Callable[..., Any],
           live_server: Callable[..., Any]) -> tuple[Any, Any]:
    install(tiny, server_settings().models_dir)
    app, proc = app_factory(local="server answer")
    return live_server(app), proc


@pytest.mark.browser
def test_wasm_answers_in_the_browser_exactly_like_pytorch(pw: Any, served: tuple[Any, Any],
                                                          tiny: dict[str, Any]) -> None:
    srv, proc = served
    browser = launch(pw, webgpu=False)
    seen: list[str] = []
    try:
        out = ask(open_ui(browser, srv.url, seen), "wasm", 24)
    finally:
        browser.close()
    assert out["error"] == "" and out["fallback"] == ""
    assert out["answer"] == expected_text(tiny, 24)
    assert out["timing"].startswith("path: browser-wasm · load ") and "first token" in out["timing"]
    assert f"by {BUNDLE} on wasm" in out["route"]
    assert proc.backend("fastvlm").calls == [] and proc.backend("gemini").calls == []  # never reached the server
    assert only_local(seen) == {"127.0.0.1"}, seen
    paths = {urlparse(u).path for u in seen}
    assert {f"/models/{BUNDLE}/onnx/{s}.onnx" for s in onnx_bundle.SESSIONS} <= paths
    assert "/ui/vendor/ort-wasm-simd-threaded.jsep.wasm" in paths
    assert not any(p.startswith("/v1/") for p in paths)


@pytest.mark.browser
def test_without_a_webgpu_adapter_the_ui_says_so_and_uses_wasm(pw: Any, served: tuple[Any, Any],
                                                               tiny: dict[str, Any]) -> None:
    srv, _proc = served
    browser = launch(pw, webgpu=False)  # chromium without --enable-unsafe-webgpu offers no adapter here
    seen: list[str] = []
    try:
        out = ask(open_ui(browser, srv.url, seen), "auto", 8)
    finally:
        browser.close()
    assert out["webgpu"].startswith("WebGPU: unavailable"), out
    assert out["timing"].startswith("path: browser-wasm")
    assert out["fallback"].startswith("webgpu skipped: unavailable")
    assert out["answer"] == expected_text(tiny, 8)
    assert only_local(seen) == {"127.0.0.1"}, seen


@pytest.mark.browser
def test_webgpu_answers_like_pytorch_when_chromium_has_an_adapter(pw: Any, served: tuple[Any, Any],
                                                                  tiny: dict[str, Any]) -> None:
    srv, _proc = served
    browser = launch(pw, webgpu=True)
    seen: list[str] = []
    try:
        page = open_ui(browser, srv.url, seen)
        page.wait_for_function("!document.getElementById('webgpu').textContent.includes('checking')")
        if "unavailable" in (page.text_content("#webgpu") or ""):
            out = ask(page, "auto", 4)
            assert out["timing"].startswith("path: browser-wasm") and "webgpu skipped" in out["fallback"]
            pytest.skip(f"no WebGPU adapter in this chromium ({page.text_content('#webgpu')}); fell back to WASM")
        out = ask(page, "webgpu", 4, timeout_s=90)  # SwiftShader compiles shaders on the first run: slow
    finally:
        browser.close()
    assert out["timing"].startswith("path: browser-webgpu"), out
    assert out["answer"] == expected_text(tiny, 4)
    assert only_local(seen) == {"127.0.0.1"}, seen


@pytest.mark.browser
def test_with_no_bundle_the_ui_falls_back_to_the_server_api(pw: Any, vendored: None, app_factory: Callable[..., Any],
                                                            live_server: Callable[..., Any]) -> None:
    app, proc = app_factory(local=lambda req: f"server saw {req.attachments[0].mime}")
    srv = live_server(app)
    browser = launch(pw, webgpu=False)
    seen: list[str] = []
    try:
        out = ask(open_ui(browser, srv.url, seen), "auto", 8)
    finally:
        browser.close()
    assert "no ONNX model bundle" in out["fallback"] and "asked the server instead" in out["fallback"]
    assert out["timing"].startswith("path: server")
    assert out["answer"].strip() == "server saw image/png"  # the fake streams words; the UI keeps the spacing
    assert len(proc.backend("fastvlm").calls) == 1
    assert only_local(seen) == {"127.0.0.1"}, seen
