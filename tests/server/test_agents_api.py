"""`GET /v1/agents` and `POST /v1/agents/{name}`: the registry's agents over HTTP, on fake backends.

Covers the listing (inputs and option schemas as a remote caller sees them), a caption batch (multipart
and JSON data: URIs), the medical agent on DICOM slices written by tests/medical/conftest.py (no
identifying value in the response, no cloud call), every refusal as a JSON body with its status
(404 unknown agent, 400 bad option or field, 403 privacy), and the surveillance agent inline and as a job.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

# tests/ is on sys.path (rootdir import mode): tests/agents is the package `agents`
from agents.conftest import GREY, ScriptedAnswers
from synth_media import picture

from .conftest import assert_error

CAPTION = {"caption": "A grey square.", "alt_text": "Grey square", "alt_text_long": "A flat grey square.",
           "tags": ["grey"]}
RECEIPT = {"document_type": "receipt", "text": "TOTAL 3.00", "fields": [{"label": "total", "value": "3.00"}],
           "line_items": [], "total": 3.0}
#: a light grey 200x100 screenshot (tests/synth_media.py)
SHOT = picture(GREY, (200, 100))


@pytest.fixture
def agent_client(app_factory: Callable[..., Any]) -> Callable[..., Any]:
    """A TestClient over fake backends answering `local` / `cloud`; `.processor` is the processor."""
    from fastapi.testclient import TestClient

    clients: list[Any] = []

    def make(local: Any = "{}", cloud: Any = "{}", **settings: Any) -> Any:
        app, proc = app_factory(local, cloud, **settings)
        client = TestClient(app).__enter__()
        client.processor = proc
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def calls(client: Any, backend: str) -> list[Any]:
    inner = client.processor.backend(backend)
    return getattr(inner, "inner", inner).calls  # cloud fakes sit behind the egress gate


def data_uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


# --------------------------------------------------------------------------- listing


def test_list_shows_every_agent_with_inputs_and_remote_options(agent_client: Callable[..., Any]) -> None:
    client = agent_client()
    resp = client.get("/v1/agents")
    assert resp.status_code == 200
    rows = {row["name"]: row for row in resp.json()["agents"]}
    assert {"caption", "document", "ux-review", "video-summary", "medical", "surveillance", "tech-docs"} <= set(rows)
    for row in rows.values():
        assert row["description"] and row["inputs"]["kinds"] and row["options"]["type"] == "object"
        assert row["urls"]["run"] == f"/v1/agents/{row['name']}"
    medical, surveillance = rows["medical"], rows["surveillance"]
    assert medical["inputs"] == {"kinds": ["dicom", "image"], "min": 1, "max": 1}
    assert medical["hints"]["local_only"] is True and medical["hints"]["sensitive"] is True
    assert "CT" in medical["options"]["properties"]["modality"]["enum"]
    # what writes to or reaches out from the server is not offered to a remote caller
    assert "report" not in medical["options"]["properties"]
    assert set(surveillance["options"]["properties"]) == {"zones", "describe", "start_time", "duration", "reconnects"}
    assert surveillance["options"]["required"] == ["zones"] and surveillance["inputs"]["kinds"] == ["stream", "video"]
    assert rows["caption"]["params"] == {"style": "plain and factual", "language": "English"}


def test_show_adds_the_output_schema_and_unknown_is_404(agent_client: Callable[..., Any]) -> None:
    client = agent_client()
    caption = client.get("/v1/agents/caption").json()
    assert caption["output_schema"]["properties"]["alt_text"]["maxLength"] == 150
    medical = client.get("/v1/agents/medical").json()
    assert {"severity", "findings", "study", "disclaimer"} <= set(medical["output_schema"]["required"])
    err = assert_error(client.get("/v1/agents/nope"), 404, "agent_not_found")
    assert "unknown agent 'nope'" in err["message"] and "caption" in err["message"]


# --------------------------------------------------------------------------- runs


def test_caption_batch_over_multipart_and_json(agent_client: Callable[..., Any], spool: Path) -> None:
    client = agent_client(local=ScriptedAnswers(CAPTION), cloud=ScriptedAnswers(CAPTION))
    files = [("file", ("a.png", picture(GREY, (16, 16)), "image/png")),
             ("file", ("b.png", picture(GREY, (20, 12)), "image/png"))]
    resp = client.post("/v1/agents/caption", files=files, data={"params": json.dumps({"style": "terse"})})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["agent"] == "caption" and body["ok"] is True and (body["done"], body["failed"]) == (2, 0)
    assert [item["input"] for item in body["items"]] == ["a.png", "b.png"]  # the client's names, not temp paths
    assert all(item["output"]["alt_text"] == "Grey square" and item["attempts"] == 1 for item in body["items"])
    sent = calls(client, "fastvlm") + calls(client, "gemini")
    assert len(sent) == 2 and all("terse style" in r.prompt for r in sent)
    assert list(spool.iterdir()) == []  # the uploads are gone

    resp = client.post("/v1/agents/caption",
                       json={"attachments": [data_uri(picture(GREY, (8, 8)))], "mode": "local-only"})
    assert resp.status_code == 200, resp.text
    (item,) = resp.json()["items"]
    assert item["input"] == "attachment-1" and item["backend"] == "fastvlm" and item["output"]["caption"]
    assert str(spool) not in resp.text and list(spool.iterdir()) == []


def test_medical_reads_uploaded_dicom_slices_locally_without_identifiers(
    agent_client: Callable[..., Any], tmp_path: Path, spool: Path,
) -> None:
    pytest.importorskip("pydicom")
    from fastvlm_gemini_hybrid.agents.medical import MedicalReport
    from medical.conftest import LEAK_STRINGS, findings_json, write_ct_series

    write_ct_series(tmp_path / "study", 3)
    slices = sorted((tmp_path / "study").iterdir())  # file names carry the patient's name
    client = agent_client(local=findings_json("Large left pneumothorax", impression="Pneumothorax."),
                          cloud=findings_json("cloud answer"))
    files = [("file", (p.name, p.read_bytes(), "application/dicom")) for p in slices]
    resp = client.post("/v1/agents/medical", files=files, data={"mode": "auto"})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    (item,) = body["items"]
    report = MedicalReport.model_validate(item["output"])  # the declared output model is what comes back
    assert report.severity == "critical" and report.backend == "fastvlm" and report.deidentified is True
    assert item["input"] == report.study and item["ok"] and item["backend"] == "fastvlm"
    assert report.series["images"] == 3  # type: ignore[attr-defined]  # the three slices read as one study
    assert "1 study to read, on this machine only" in body["notes"]
    assert calls(client, "gemini") == [] and len(calls(client, "fastvlm")) == 1
    request = calls(client, "fastvlm")[0]
    assert request.sensitive is True and request.domain.value == "medical"
    lowered = resp.text.lower()
    assert not [s for s in LEAK_STRINGS if s.lower() in lowered], "the response leaks identifying data"
    assert list(spool.iterdir()) == []


def test_a_single_answer_that_fails_is_the_error_response(agent_client: Callable[..., Any]) -> None:
    client = agent_client(local="garbage", cloud="garbage")
    resp = client.post("/v1/agents/ux-review", json={"attachments": [data_uri(SHOT)]})
    err = assert_error(resp, 502, "agent_output_invalid")
    assert "invalid UXReview JSON twice" in err["message"] and "Traceback" not in resp.text


# --------------------------------------------------------------------------- refusals


def test_unknown_agent_is_404_json(agent_client: Callable[..., Any]) -> None:
    client = agent_client()
    resp = client.post("/v1/agents/nope", json={"attachments": [data_uri(SHOT)]})
    err = assert_error(resp, 404, "agent_not_found")
    assert "unknown agent 'nope'" in err["message"]
    assert calls(client, "fastvlm") == [] and calls(client, "gemini") == []


@pytest.mark.parametrize(
    ("agent", "body", "message"),
    [
        ("medical", {"options": {"modality": "XYZ"}}, "unknown modality 'XYZ'"),
        ("medical", {"options": {"report": "{tmp}/evil"}}, "can only be set on this machine's command line"),
        ("caption", {"options": {"zones": "x"}}, "has no option 'zones'"),
        ("caption", {"params": {"nope": "x"}}, "has no parameter 'nope'"),
        ("caption", {"params": {"style": 3}}, "params values must be strings"),
        ("caption", {"options": ["not", "an", "object"]}, "options must be a JSON object"),
        ("caption", {"mode": "sideways"}, "unknown mode 'sideways'"),
        ("caption", {"concurrency": 0}, "concurrency must be at least 1"),
        ("surveillance", {"options": {"zones": "zones: []", "reconnects": "many"}}, "reconnects must be a whole"),
        ("surveillance", {}, "needs the 'zones' option"),
        ("video-summary", {}, "needs at least 1 input"),
    ],
)
def test_bad_options_and_fields_are_400(agent_client: Callable[..., Any], tmp_path: Path, agent: str,
                                        body: dict[str, Any], message: str) -> None:
    client = agent_client()
    payload = json.loads(json.dumps(body).replace("{tmp}", str(tmp_path)))
    if agent != "video-summary":
        payload["attachments"] = [data_uri(SHOT)]
    resp = client.post(f"/v1/agents/{agent}", json=payload)
    err = assert_error(resp, 400, "bad_input")
    assert message in err["message"], err["message"]
    assert calls(client, "fastvlm") == [] and calls(client, "gemini") == []
    assert not (tmp_path / "evil").exists()


def test_multipart_options_as_json_text_and_fields(agent_client: Callable[..., Any]) -> None:
    client = agent_client()
    shot = [("file", ("x.png", SHOT, "image/png"))]
    err = assert_error(client.post("/v1/agents/medical", files=shot, data={"options": "{not json"}), 400, "bad_input")
    assert "not valid JSON" in err["message"]
    both = {"options": json.dumps({"modality": "DX"}), "modality": "CT"}
    err = assert_error(client.post("/v1/agents/medical", files=shot, data=both), 400, "bad_input")
    assert "given twice" in err["message"]


@pytest.mark.parametrize(
    ("agent", "body"),
    [
        ("document", {"mode": "cloud-only"}),  # sensitive by default: the cloud is refused, not asked
        ("medical", {"mode": "cloud-only", "options": {"modality": "DX"}}),
        ("medical", {"sensitive": False, "options": {"modality": "DX"}}),  # medical cannot be made non-sensitive
    ],
)
def test_privacy_refusals_are_403(agent_client: Callable[..., Any], agent: str, body: dict[str, Any]) -> None:
    client = agent_client()
    resp = client.post(f"/v1/agents/{agent}", json={**body, "attachments": [data_uri(SHOT)]})
    err = assert_error(resp, 403, "policy_violation")
    assert "refused" in err["message"]
    assert calls(client, "fastvlm") == [] and calls(client, "gemini") == []


def test_a_sensitive_document_is_answered_locally(agent_client: Callable[..., Any]) -> None:
    client = agent_client(local=ScriptedAnswers(RECEIPT), cloud=ScriptedAnswers(RECEIPT))
    resp = client.post("/v1/agents/document", json={"attachments": [data_uri(SHOT)], "mode": "auto"})
    assert resp.status_code == 200, resp.text
    (item,) = resp.json()["items"]
    assert item["ok"] and item["backend"] == "fastvlm" and item["output"]["total"] == 3.0
    assert calls(client, "gemini") == [] and calls(client, "fastvlm")[0].sensitive is True


# --------------------------------------------------------------------------- surveillance: inline and as a job


@pytest.fixture(scope="module")
def walker_clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    pytest.importorskip("av")
    pytest.importorskip("cv2")
    from video import synth

    return synth.make_clip(tmp_path_factory.mktemp("clips") / "walker.mp4", 12.0, synth.walker()).read_bytes()


def test_surveillance_inline_takes_zones_as_content(agent_client: Callable[..., Any], walker_clip: bytes,
                                                    spool: Path) -> None:
    import yaml

    from video import synth

    client = agent_client()
    zones = yaml.safe_load(synth.ZONES_YAML)  # sent as a JSON object: the file's content, never a path
    resp = client.post("/v1/agents/surveillance", json={"attachments": [data_uri(walker_clip, "video/mp4")],
                                                        "options": {"zones": zones, "start_time": "2025-01-01T12:00"}})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    (item,) = body["items"]
    alerts = item["output"]["alerts"]
    assert [a["type"] for a in alerts] == ["motion", "zone_enter", "loitering", "zone_exit"]
    enter = alerts[1]
    assert enter["zone"] == "loading-dock" and enter["priority"] == "high" and enter["reason"]
    assert abs(enter["start_s"] - synth.crossing_time(synth.ZONE_X)) <= 0.5
    stats = item["output"]["stats"]
    assert stats["alerts"] == 4 and stats["descriptions"] == "unavailable" and stats["frames"] > 0
    assert any("descriptions unavailable" in n for n in body["notes"]) and item["input"] == "attachment-1"
    assert calls(client, "fastvlm") == [] and calls(client, "gemini") == []
    assert list(spool.iterdir()) == []


def test_surveillance_as_a_job_streams_each_alert(agent_client: Callable[..., Any], walker_clip: bytes,
                                                  spool: Path) -> None:
    from video import synth

    client = agent_client()
    resp = client.post("/v1/agents/surveillance", files=[("file", ("walker.mp4", walker_clip, "video/mp4"))],
                       data={"zones": synth.ZONES_YAML, "job": "true"})
    assert resp.status_code == 202, resp.text
    job = resp.json()
    assert job["kind"] == "agent:surveillance" and job["urls"]["events"] == f"/v1/jobs/{job['id']}/events"
    with client.stream("GET", job["urls"]["events"]) as stream:
        events = [json.loads(line[6:]) for line in stream.iter_lines() if line.startswith("data: ")]
    assert [e["state"] for e in events if e["type"] == "state"] == ["running", "succeeded"]
    alerts = [e["event"]["type"] for e in events if e["type"] == "event"]
    assert alerts == ["motion", "zone_enter", "loitering", "zone_exit"]
    (item,) = [e for e in events if e["type"] == "item"]
    assert item["ok"] and [a["type"] for a in item["output"]["alerts"]] == alerts and item["input"] == "walker.mp4"
    assert events.index(item) > max(i for i, e in enumerate(events) if e["type"] == "event")
    done = client.get(job["urls"]["self"]).json()
    assert done["state"] == "succeeded" and done["results"][0]["output"]["stats"]["alerts"] == 4
    assert list(spool.iterdir()) == []


# --------------------------------------------------------------------------- surveillance: live stream URLs


def stream_body(url: str, **options: Any) -> dict[str, Any]:
    from video import synth

    return {"stream": url, "options": {"zones": synth.ZONES_YAML, **options}}


def test_stream_urls_are_403_while_stream_sources_is_off(agent_client: Callable[..., Any],
                                                        loopback_stream: Callable[..., Any], spool: Path) -> None:
    from video import synth

    server = loopback_stream()
    client = agent_client()
    err = assert_error(client.post("/v1/agents/surveillance", json=stream_body(server.url)), 403,
                       "stream_sources_disabled")
    assert "FASTVLM_HYBRID_STREAM_SOURCES=true" in err["message"]
    form = {"stream": server.url, "zones": synth.ZONES_YAML, "job": "true"}  # the job form is refused the same way
    err = assert_error(client.post("/v1/agents/surveillance", data=form), 403, "stream_sources_disabled")
    assert "FASTVLM_HYBRID_STREAM_SOURCES=true" in err["message"]
    assert server.connections == 0 and list(spool.iterdir()) == []


def test_a_host_not_on_the_allow_list_is_403_naming_it(agent_client: Callable[..., Any],
                                                       loopback_stream: Callable[..., Any]) -> None:
    server = loopback_stream()
    client = agent_client(stream_sources=True, stream_allowed_hosts=["cam.lan", f"127.0.0.1:{server.port + 1}"])
    err = assert_error(client.post("/v1/agents/surveillance", json=stream_body(server.url)), 403,
                       "stream_host_not_allowed")
    assert f"127.0.0.1:{server.port}" in err["message"] and "stream_allowed_hosts" in err["message"]
    assert server.connections == 0  # refused before any connection


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"stream": "file:///etc/passwd"}, "scheme file:// is not allowed"),
        ({"stream": "concat:/etc/passwd|/etc/hosts"}, "must be a URL"),
        ({"stream": "subfile,,start,0,end,0,,:/etc/passwd"}, "must be a URL"),
        ({"stream": "tcp://127.0.0.1:9?listen=1"}, "take no ?query"),
        ({"stream": 5}, "stream must be a string"),
        ({"attachments": ["https://www.youtube.com/watch?v=dQw4w9WgXcQ"]}, "opens no links"),
    ],
)
def test_bad_stream_sources_are_400(agent_client: Callable[..., Any], body: dict[str, Any], message: str) -> None:
    from video import synth

    client = agent_client(stream_sources=True, stream_allowed_hosts=["127.0.0.1"])
    resp = client.post("/v1/agents/surveillance", json={**body, "options": {"zones": synth.ZONES_YAML}})
    err = assert_error(resp, 400, "bad_input")
    assert message in err["message"], err["message"]


def test_stream_fields_that_do_not_fit_are_400(agent_client: Callable[..., Any], walker_clip: bytes) -> None:
    client = agent_client(stream_sources=True, stream_allowed_hosts=["127.0.0.1"], stream_max_s=30)
    url = "tcp://127.0.0.1:9"
    cases = [
        ("surveillance", {**stream_body(url), "attachments": [data_uri(walker_clip, "video/mp4")]}, "not both"),
        ("caption", {"stream": url}, "takes no stream URL"),
        ("surveillance", stream_body(url, duration=31), "at most 30 s"),
        ("surveillance", stream_body(url, reconnects=11), "reconnects must be at most 10"),
    ]
    for agent, body, message in cases:
        err = assert_error(client.post(f"/v1/agents/{agent}", json=body), 400, "bad_input")
        assert message in err["message"], err["message"]


def test_surveillance_watches_an_allowed_loopback_stream(agent_client: Callable[..., Any],
                                                         loopback_stream: Callable[..., Any], spool: Path) -> None:
    server = loopback_stream()
    client = agent_client(stream_sources=True, stream_allowed_hosts=[f"127.0.0.1:{server.port}"])
    resp = client.post("/v1/agents/surveillance", json=stream_body(server.url, duration=5, reconnects=0))
    assert resp.status_code == 200, resp.text
    (item,) = resp.json()["items"]
    assert item["ok"] and item["input"] == server.url
    types = [a["type"] for a in item["output"]["alerts"]]
    assert types[:2] == ["motion", "zone_enter"], types
    assert all(a["start_s"] <= 5.2 for a in item["output"]["alerts"])  # the duration bounded the run
    assert item["output"]["stats"]["frames"] > 20 and server.connections == 1
    assert calls(client, "fastvlm") == [] and calls(client, "gemini") == []
    assert list(spool.iterdir()) == []


def test_a_stream_job_streams_alerts_and_can_be_cancelled(agent_client: Callable[..., Any],
                                                          loopback_stream: Callable[..., Any]) -> None:
    import time

    from video import synth

    server = loopback_stream(speed=0.25)  # 6 s of video over 24 s
    client = agent_client(stream_sources=True, stream_allowed_hosts=[f"127.0.0.1:{server.port}"])
    resp = client.post("/v1/agents/surveillance", data={"stream": server.url, "zones": synth.ZONES_YAML,
                                                        "job": "true", "reconnects": "0"})
    assert resp.status_code == 202, resp.text
    job = resp.json()
    deadline = time.monotonic() + 20
    while client.get(job["urls"]["self"]).json()["events"] < 3:  # "running", a note, then the first alert
        assert time.monotonic() < deadline, "no alert from the stream"
        time.sleep(0.1)
    started = time.monotonic()
    assert client.delete(job["urls"]["self"]).status_code == 200
    while (state := client.get(job["urls"]["self"]).json())["state"] == "running":
        assert time.monotonic() - started < 5, "the cancelled job kept running"
        time.sleep(0.1)
    assert state["state"] == "cancelled"
    with client.stream("GET", job["urls"]["events"]) as stream:
        events = [json.loads(line[6:]) for line in stream.iter_lines() if line.startswith("data: ")]
    alerts = [e["event"]["type"] for e in events if e["type"] == "event"]
    assert alerts and alerts[0] == "motion" and "loitering" not in alerts  # stopped long before the end


def test_a_live_run_is_bounded_by_default(monkeypatch: pytest.MonkeyPatch, server_settings: Callable[..., Any]) -> None:
    from fastvlm_gemini_hybrid.agents.base import AgentOptions
    from fastvlm_gemini_hybrid.server import agents_api
    from fastvlm_gemini_hybrid.server.stream_sources import check_stream

    settings = server_settings(stream_sources=True, stream_allowed_hosts=["127.0.0.1"], stream_max_s=30)
    source = check_stream("tcp://127.0.0.1:9000", settings)
    options = AgentOptions(extra={"duration": None, "reconnects": 5})
    agents_api._bound_live_run(options, source, settings)
    assert options.extra["duration"] == 30  # no duration asked: the server's ceiling
    assert options.source_options == source.options and options.source_options["protocol_whitelist"] == "tcp"
    now = [1000.0]
    monkeypatch.setattr(agents_api.time, "monotonic", lambda: now[0])
    assert options.stopped() is False  # the clock starts at the first frame
    now[0] += 30 + agents_api.STREAM_GRACE_S - 1
    assert options.stopped() is False
    now[0] += 2  # a stream whose clock stalls is stopped by the wall clock
    assert options.stopped() is True
