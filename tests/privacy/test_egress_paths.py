"""Zero bytes of a sensitive request reach the (fake) cloud, on every path a request can take.

Each face (processor API in five modes, CLI `ask` in five modes, `batch`, `agents run`, `video`,
`surveil --describe`, `/v1/analyze`, `/v1/route`, `/v1/chat/completions` with system messages and
earlier turns, `/v1/jobs`) runs over the REAL Gemini backend (google-genai SDK) pointed at the fake
Gemini server, with a test-only local backend whose answers are never confident (so every route that
may escalate tries to). What the fake received is counted at its socket.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cloud.fake_gemini import FakeGeminiServer
from fakes import make_processor
from fastvlm_gemini_hybrid.backends.gemini import GeminiBackend
from fastvlm_gemini_hybrid.cli import main
from fastvlm_gemini_hybrid.config import Settings, load_settings
from fastvlm_gemini_hybrid.errors import EgressRefusedError, PolicyViolationError
from fastvlm_gemini_hybrid.processor import HybridVLMProcessor
from fastvlm_gemini_hybrid.types import Attachment, GenerationOptions, Mode, Request
from synth_media import encode, make_clip

MODES = [m.value for m in Mode]


@pytest.fixture
def settings(fake_gemini: FakeGeminiServer, tmp_path: Path) -> Settings:
    return load_settings(home=tmp_path / "home", gemini_api_key=FakeGeminiServer.api_key,
                         gemini_base_url=fake_gemini.base_url, gemini_retries=0, cache_enabled=False)


def _processor(settings: Settings, local: Any = "a local answer") -> HybridVLMProcessor:
    """A never-confident local FunctionBackend and the real Gemini backend (pointed at the fake)."""
    return make_processor(settings, local, GeminiBackend(settings), local_kw={"confidence": 0.05})


@pytest.fixture
def seams(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Every CLI command builds its processor through one seam: give them fake-local + real-Gemini ones."""
    from fastvlm_gemini_hybrid.cli import agents_cmd, ask_cmd, video_cmd

    monkeypatch.setattr(ask_cmd, "make_processor", lambda args: _processor(settings))
    monkeypatch.setattr(video_cmd, "make_processor", lambda args: _processor(settings))
    monkeypatch.setattr(agents_cmd, "make_processor", lambda _settings: _processor(settings))
    return settings


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# --------------------------------------------------------------------------- processor, five modes


@pytest.mark.parametrize("mode", MODES)
async def test_a_card_picture_never_reaches_the_cloud(settings: Settings, fake_gemini: FakeGeminiServer,
                                                      card_png: bytes, mode: str) -> None:
    proc = _processor(settings)
    request = Request("What does this say?", attachments=(Attachment.from_bytes(card_png, name="IMG_4517.png"),),
                      mode=Mode.parse(mode))
    try:
        result = await proc.arun(request)
    except PolicyViolationError as exc:
        assert mode == "cloud-only" and exc.exit_code == 2 and "payment card" in str(exc)
    else:
        assert mode != "cloud-only" and result.backend == "fastvlm"
        if mode == "auto":  # the unsure local answer tried to escalate, so the inspection was awaited
            assert result.route.privacy is not None and result.route.privacy["verdict"] == "refuse"
            assert "gemini" not in result.route.backends
            assert any(a.backend == "gemini" and "payment card" in a.error for a in result.fallbacks)
    finally:
        await proc.aclose()
    assert fake_gemini.requests == [] and fake_gemini.bytes_received == 0


@pytest.mark.parametrize("mode", MODES)
async def test_sensitive_system_text_never_reaches_the_cloud(settings: Settings, fake_gemini: FakeGeminiServer,
                                                             benign_png: bytes, mode: str) -> None:
    proc = _processor(settings)
    request = Request("Describe this image.", attachments=(Attachment.from_bytes(benign_png),), mode=Mode.parse(mode),
                      options=GenerationOptions(system="Patient John Doe, SSN 078-05-1120, HIV positive."))
    try:
        result = await proc.arun(request)
        assert result.backend == "fastvlm"
    except PolicyViolationError:
        assert mode == "cloud-only"
    finally:
        await proc.aclose()
    assert fake_gemini.bytes_received == 0


async def test_a_benign_picture_still_escalates(settings: Settings, fake_gemini: FakeGeminiServer,
                                                benign_png: bytes) -> None:
    proc = _processor(settings)
    try:
        result = await proc.arun(Request("What does this say?", attachments=(Attachment.from_bytes(benign_png),)))
    finally:
        await proc.aclose()
    assert result.backend == "gemini" and len(fake_gemini.model_calls) == 1
    assert result.route.privacy is not None and result.route.privacy["verdict"] == "allow"


async def test_streaming_is_gated_too(settings: Settings, fake_gemini: FakeGeminiServer, card_png: bytes) -> None:
    proc = _processor(settings)
    pieces = []
    try:
        with pytest.raises(EgressRefusedError):
            async for piece in proc.astream(Request("What does this say?", mode=Mode.CLOUD_ONLY,
                                                    attachments=(Attachment.from_bytes(card_png),))):
                pieces.append(piece)
    finally:
        await proc.aclose()
    assert pieces == [] and fake_gemini.bytes_received == 0


async def test_the_audit_record_names_categories_never_values(settings: Settings, card_png: bytes) -> None:
    proc = _processor(settings)
    try:
        await proc.arun(Request("What does this say?", attachments=(Attachment.from_bytes(card_png),)))
    finally:
        await proc.aclose()
    text = settings.audit_path.read_text()
    record = json.loads(text.strip().splitlines()[-1])
    assert record["privacy"]["verdict"] == "refuse" and "pii/card" in record["privacy"]["categories"]
    assert "4539" not in text and "MORGAN" not in text


# --------------------------------------------------------------------------- CLI


@pytest.mark.parametrize("mode", MODES)
def test_cli_ask_in_every_mode(capsys: pytest.CaptureFixture[str], seams: Settings, fake_gemini: FakeGeminiServer,
                               card_png: bytes, tmp_path: Path, mode: str) -> None:
    picture = tmp_path / "IMG_4517.png"
    picture.write_bytes(card_png)
    code, out, err = _cli(capsys, "ask", "What does this say?", "-a", str(picture), "--mode", mode, "--json")
    if mode == "cloud-only":
        assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and "payment card" in err
    else:
        assert code == 0, err
        assert json.loads(out)["backend"] == "fastvlm"
    assert fake_gemini.bytes_received == 0


def test_cli_route_names_what_the_picture_shows(capsys: pytest.CaptureFixture[str], card_png: bytes,
                                                tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "test-key")
    picture = tmp_path / "IMG_4517.png"
    picture.write_bytes(card_png)
    code, out, err = _cli(capsys, "route", "What does this say?", "-a", str(picture), "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["sensitive"] is True and data["cloud_allowed"] is False and "gemini" not in data["backends"]
    reasons = [f["reason"] for f in data["privacy"]["findings"]]
    assert any("picture 1 shows a payment card number" in r for r in reasons)
    assert "4539" not in out
    code, out, err = _cli(capsys, "route", "What does this say?", "-a", str(picture), "--mode", "cloud-only")
    assert code == 2 and "payment card" in err


def test_cli_batch(capsys: pytest.CaptureFixture[str], seams: Settings, fake_gemini: FakeGeminiServer,
                   card_png: bytes, tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "IMG_0001.png").write_bytes(card_png)
    (folder / "IMG_0002.png").write_bytes(card_png)
    out_file = tmp_path / "out.jsonl"
    code, _out, _err = _cli(capsys, "batch", str(folder), "What does this say?", "--mode", "cloud-only",
                            "--out", str(out_file))
    rows = [json.loads(line) for line in out_file.read_text().splitlines()]
    assert code != 0 and len(rows) == 2 and all("error" in r for r in rows)
    assert fake_gemini.bytes_received == 0


def test_cli_agent(capsys: pytest.CaptureFixture[str], seams: Settings, fake_gemini: FakeGeminiServer,
                   card_png: bytes, tmp_path: Path) -> None:
    picture = tmp_path / "IMG_0003.png"
    picture.write_bytes(card_png)
    code, _out, err = _cli(capsys, "agents", "run", "caption", str(picture), "--mode", "cloud-only", "--json")
    assert code != 0, err
    assert fake_gemini.bytes_received == 0


def _card_clip(path: Path, card_png: bytes) -> Path:
    """A short clip whose frames show the card picture."""
    import av
    import numpy as np
    from PIL import Image

    frame = np.asarray(Image.open(io.BytesIO(card_png)).convert("RGB").resize((640, 360)))
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=5)
        stream.width, stream.height, stream.pix_fmt = 640, 360, "yuv420p"
        for _ in range(10):
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def test_cli_video_frames(capsys: pytest.CaptureFixture[str], seams: Settings, fake_gemini: FakeGeminiServer,
                          card_png: bytes, tmp_path: Path) -> None:
    clip = _card_clip(tmp_path / "clip.mp4", card_png)
    code, _out, err = _cli(capsys, "video", str(clip), "What is happening?", "--mode", "cloud-only", "--every-s", "1",
                           "--no-summary", "--json")
    assert fake_gemini.bytes_received == 0, err
    assert code != 0 or "payment card" in err


async def test_a_video_file_is_inspected_before_it_leaves(settings: Settings, fake_gemini: FakeGeminiServer,
                                                          card_png: bytes, tmp_path: Path) -> None:
    clip = _card_clip(tmp_path / "clip.mp4", card_png)
    proc = _processor(settings)
    try:
        with pytest.raises(PolicyViolationError, match="video 1"):
            await proc.arun(Request("Summarise this clip", mode=Mode.CLOUD_ONLY,
                                    attachments=(Attachment.from_path(clip),)))
        plain = make_clip(tmp_path / "plain.mp4", [(0, 0, 200), (0, 200, 0)], seconds_each=1.0)
        result = await proc.arun(Request("Summarise this clip", mode=Mode.CLOUD_ONLY,
                                         attachments=(Attachment.from_path(plain),)))
    finally:
        await proc.aclose()
    assert result.backend == "gemini" and len(fake_gemini.model_calls) == 1  # a harmless clip still goes


# --------------------------------------------------------------------------- surveillance descriptions



def test_surveillance_descriptions_blur_faces_by_default(settings: Settings, fake_gemini: FakeGeminiServer,
                                                         face_png: bytes) -> None:
    import numpy as np
    from PIL import Image

    from fastvlm_gemini_hybrid.agents.surveillance import AlertDescriber
    from fastvlm_gemini_hybrid.privacy.faces import detect_faces
    from fastvlm_gemini_hybrid.video.events import Event

    image = Image.open(io.BytesIO(face_png)).convert("RGB")
    jpeg = encode(image, "jpeg", quality=95)
    proc = _processor(settings, local="not json")  # the local answer is unusable: the cloud is asked
    try:
        AlertDescriber(proc).describe(jpeg, Event(type="zone_enter", zone="door", start_s=1.0))
    finally:
        proc.close()
    [sent] = fake_gemini.inline_images()
    original = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"), dtype=np.int16)
    received = np.asarray(Image.open(io.BytesIO(sent)).convert("RGB"), dtype=np.int16)
    [face] = detect_faces(image)
    inside = np.zeros(original.shape[:2], bool)
    inside[face.y : face.y + face.h, face.x : face.x + face.w] = True
    diff = np.abs(received - original).mean(axis=2)
    assert diff[inside].mean() > 12  # the face changed beyond recognition
    grown = np.zeros_like(inside)
    pad = max(face.w, face.h)
    grown[max(0, face.y - pad) : face.y + face.h + pad, max(0, face.x - pad) : face.x + face.w + pad] = True
    assert diff[~grown].mean() < 1.5  # the rest of the picture is intact (JPEG re-encoding only)
    assert detect_faces(Image.open(io.BytesIO(sent)).convert("RGB")) == []  # no face left to find


# --------------------------------------------------------------------------- HTTP


@pytest.fixture
def http(settings: Settings) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    from fastvlm_gemini_hybrid.server import create_app

    proc = _processor(settings)
    with TestClient(create_app(processor=proc)) as client:
        yield client


def _data_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def test_http_analyze(http: Any, fake_gemini: FakeGeminiServer, card_png: bytes) -> None:
    files = {"file": ("IMG_4517.png", card_png, "image/png")}
    refused = http.post("/v1/analyze", data={"prompt": "What does this say?", "mode": "cloud-only"}, files=files)
    assert refused.status_code == 403 and "payment card" in refused.json()["error"]["message"]
    local = http.post("/v1/analyze", data={"prompt": "What does this say?"}, files=files)
    assert local.status_code == 200 and local.json()["backend"] == "fastvlm"
    assert local.json()["route"]["privacy"]["verdict"] == "refuse"
    assert fake_gemini.bytes_received == 0


def test_http_route_explains_without_sending(http: Any, fake_gemini: FakeGeminiServer, card_png: bytes) -> None:
    response = http.post("/v1/route", data={"prompt": "What does this say?"},
                         files={"file": ("IMG_4517.png", card_png, "image/png")})
    assert response.status_code == 200
    kinds = {f["kind"] for f in response.json()["privacy"]["findings"]}
    assert "card" in kinds and fake_gemini.bytes_received == 0


@pytest.mark.parametrize(
    "messages",
    [
        [{"role": "user", "content": [{"type": "text", "text": "What does this say?"},
                                      {"type": "image_url", "image_url": {"url": "CARD"}}]}],
        [{"role": "system", "content": "Patient John Doe, SSN 078-05-1120, HIV positive."},
         {"role": "user", "content": "Say hello."}],
        [{"role": "developer", "content": "Card on file: 4539 1488 0343 6467"},
         {"role": "user", "content": "Say hello."}],
        [{"role": "user", "content": "My IBAN is DE89 3704 0044 0532 0130 00."},
         {"role": "assistant", "content": "Noted."},
         {"role": "user", "content": "Now write a haiku."}],
    ],
    ids=["picture", "system", "developer", "earlier-turn"],
)
def test_http_chat_completions(http: Any, fake_gemini: FakeGeminiServer, card_png: bytes,
                               messages: list[dict[str, Any]]) -> None:
    body = json.loads(json.dumps(messages).replace('"CARD"', json.dumps(_data_uri(card_png))))
    response = http.post("/v1/chat/completions", json={"model": "gemini", "messages": body})
    assert response.status_code == 403, response.text
    error = response.json()["error"]
    assert error["code"] == "policy_violation" and error["type"]
    assert fake_gemini.bytes_received == 0


def test_http_batch_job(http: Any, fake_gemini: FakeGeminiServer, card_png: bytes) -> None:
    import time

    response = http.post("/v1/jobs", data={"kind": "batch", "prompt": "What does this say?", "mode": "cloud-only"},
                         files=[("file", ("IMG_1.png", card_png, "image/png")),
                                ("file", ("IMG_2.png", card_png, "image/png"))])
    assert response.status_code == 202
    job_id = response.json()["id"]
    for _ in range(200):
        job = http.get(f"/v1/jobs/{job_id}").json()
        if job["state"] in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(0.05)
    assert job["state"] == "succeeded"
    rows = job["results"]
    assert len(rows) == 2 and all("payment card" in json.dumps(row) for row in rows)
    assert fake_gemini.bytes_received == 0


def test_surveillance_never_sends_a_frame_that_shows_a_card(settings: Settings, fake_gemini: FakeGeminiServer,
                                                            card_png: bytes) -> None:
    from PIL import Image

    from fastvlm_gemini_hybrid.agents.surveillance import AlertDescriber
    from fastvlm_gemini_hybrid.video.events import Event

    frame = encode(Image.open(io.BytesIO(card_png)).convert("RGB"), "jpeg", quality=92)
    proc = _processor(settings, local="not json")
    try:
        out = AlertDescriber(proc).describe(frame, Event(type="zone_enter", zone="desk", start_s=2.0))
    finally:
        proc.close()
    assert out is None and fake_gemini.bytes_received == 0


def test_surveillance_face_policy_local_keeps_people_here(settings: Settings, fake_gemini: FakeGeminiServer,
                                                          face_png: bytes) -> None:
    from PIL import Image

    from fastvlm_gemini_hybrid.agents.surveillance import AlertDescriber
    from fastvlm_gemini_hybrid.video.events import Event

    frame = encode(Image.open(io.BytesIO(face_png)).convert("RGB"), "jpeg", quality=92)
    proc = _processor(settings.model_copy(update={"privacy_faces": "local"}), local="not json")
    try:
        AlertDescriber(proc).describe(frame, Event(type="zone_enter", zone="door", start_s=1.0))
    finally:
        proc.close()
    assert fake_gemini.bytes_received == 0  # the settings' stricter policy wins over the agent's "redact"


def test_faces_redact_setting_blurs_faces_on_ask(capsys: pytest.CaptureFixture[str], settings: Settings,
                                                 fake_gemini: FakeGeminiServer, face_png: bytes,
                                                 tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np
    from PIL import Image

    from fastvlm_gemini_hybrid.cli import ask_cmd
    from fastvlm_gemini_hybrid.privacy.faces import detect_faces

    monkeypatch.setenv("FASTVLM_HYBRID_PRIVACY_FACES", "redact")
    monkeypatch.setattr(ask_cmd, "make_processor", lambda args: _processor(load_settings(
        home=settings.home, gemini_api_key=FakeGeminiServer.api_key, gemini_base_url=fake_gemini.base_url,
        gemini_retries=0, cache_enabled=False)))
    picture = tmp_path / "PXL_20261104_0931.png"
    picture.write_bytes(face_png)
    code, out, err = _cli(capsys, "ask", "Describe this image.", "-a", str(picture), "--mode", "cloud-only", "--json")
    assert code == 0, err
    privacy = json.loads(out)["route"]["privacy"]
    assert privacy["verdict"] == "redact" and "face" in privacy["redactions"][0]
    [sent] = fake_gemini.inline_images()
    original = np.asarray(Image.open(io.BytesIO(face_png)).convert("RGB"), dtype=np.int16)
    received = np.asarray(Image.open(io.BytesIO(sent)).convert("RGB"), dtype=np.int16)
    diff = np.abs(received - original).max(axis=2)
    [face] = detect_faces(Image.open(io.BytesIO(face_png)).convert("RGB"))
    inside = diff[face.y : face.y + face.h, face.x : face.x + face.w]
    assert inside.mean() > 12  # blurred
    changed = diff > 0
    assert changed.mean() < 0.2 and (diff == 0).mean() > 0.8  # PNG stays lossless: the rest is untouched
    assert detect_faces(Image.open(io.BytesIO(sent)).convert("RGB")) == []
