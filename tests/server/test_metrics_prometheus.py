"""`/metrics` through prometheus-client: well-formed families, counters that move, several processes summed."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fakes import make_processor
from fastvlm_gemini_hybrid import metrics_export

parser = pytest.importorskip("prometheus_client.parser")

P = "fastvlm_hybrid"
ENV = metrics_export.MULTIPROC_ENV
SRC = str(Path(metrics_export.__file__).resolve().parents[1])


def scrape(client: Any) -> tuple[str, dict[str, Any]]:
    """(text, families by name); malformed text raises in the parser, a family written twice fails."""
    resp = client.get("/metrics")
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/plain; version=0.0.4")
    fams: dict[str, Any] = {}
    for fam in parser.text_string_to_metric_families(resp.text):
        assert fam.name not in fams, f"family {fam.name} written twice"
        fams[fam.name] = fam
    return resp.text, fams


def value(fams: dict[str, Any], family: str, sample: str, **labels: str) -> float:
    """One sample's value; 0 when the sample (or family) is absent, as Prometheus reads a counter never seen."""
    fam = fams.get(family)
    matches = [s.value for s in fam.samples if s.name == sample and s.labels == labels] if fam else []
    assert len(matches) <= 1, matches
    return matches[0] if matches else 0.0


def analyzed(fams: dict[str, Any]) -> float:
    return value(fams, f"{P}_http_requests", f"{P}_http_requests_total", method="POST", route="/v1/analyze",
                 status="2xx")


def local_calls(fams: dict[str, Any]) -> float:
    return value(fams, f"{P}_requests", f"{P}_requests_total", backend="fastvlm", mode="call", outcome="ok")


def assert_well_formed(text: str, fams: dict[str, Any]) -> None:
    """Every family has HELP and TYPE, once; counters end in _total; histograms have _bucket/_sum/_count."""
    for fam in fams.values():
        assert fam.documentation, f"{fam.name} has no HELP"
        assert fam.type in {"counter", "gauge", "histogram"}, f"{fam.name} has no TYPE"
        exposed = fam.name + ("_total" if fam.type == "counter" else "")
        assert text.count(f"# HELP {exposed} ") == 1 and text.count(f"# TYPE {exposed} {fam.type}\n") == 1, exposed
        names = {s.name for s in fam.samples}
        if fam.type == "counter":
            assert names <= {f"{fam.name}_total"}, names
        if fam.type == "histogram" and fam.samples:
            assert names == {f"{fam.name}_bucket", f"{fam.name}_sum", f"{fam.name}_count"}, names
            for labels in ({k: v for k, v in s.labels.items() if k != "le"} for s in fam.samples):
                inf = value(fams, fam.name, f"{fam.name}_bucket", **labels, le="+Inf")
                assert inf == value(fams, fam.name, f"{fam.name}_count", **labels)


# ---------------------------------------------------------------------------------------------- one process


def test_every_family_has_help_and_type_once(client: Any) -> None:
    client.post("/v1/analyze", json={"prompt": "first", "mode": "local-only"})
    text, fams = scrape(client)
    assert_well_formed(text, fams)
    expected = {"requests", "fallbacks", "cache", "privacy_verdicts", "escalations", "tokens", "cost_usd",
                "request_seconds", "circuit_state", "http_requests", "queue_running", "queue_waiting", "shed", "jobs"}
    assert {f"{P}_{name}" for name in expected} <= set(fams)
    assert fams[f"{P}_request_seconds"].type == "histogram" and fams[f"{P}_shed"].type == "counter"


def test_counters_move_after_requests(client: Any) -> None:
    _, before = scrape(client)
    for i in range(3):  # distinct prompts: no cache hits, three backend calls
        assert client.post("/v1/analyze", json={"prompt": f"q{i}", "mode": "local-only"}).status_code == 200
    client.post("/v1/analyze", json={"prompt": "q0", "mode": "local-only"})  # a cache hit
    _, after = scrape(client)
    assert analyzed(after) - analyzed(before) == 4
    assert local_calls(after) - local_calls(before) == 3
    hits = value(after, f"{P}_cache", f"{P}_cache_total", result="hit")
    assert hits - value(before, f"{P}_cache", f"{P}_cache_total", result="hit") == 1
    count = f"{P}_request_seconds_count"
    assert value(after, f"{P}_request_seconds", count, backend="fastvlm") == local_calls(after)
    scrapes = value(after, f"{P}_http_requests", f"{P}_http_requests_total", method="GET", route="/metrics",
                    status="2xx")
    assert scrapes >= 1  # the first scrape is counted by the second


def test_label_values_are_escaped(client: Any) -> None:
    odd = 'a"b\\c\nd'
    client.processor.metrics.record_fallback(odd, "timeout")
    _, fams = scrape(client)
    assert value(fams, f"{P}_fallbacks", f"{P}_fallbacks_total", backend=odd, error="timeout") == 1


def test_without_prometheus_client_metrics_is_a_501_naming_the_extra(
    client: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in [m for m in sys.modules if m == "prometheus_client" or m.startswith("prometheus_client.")]:
        monkeypatch.setitem(sys.modules, name, None)  # None: imports fail as if it were not installed
    resp = client.get("/metrics")
    assert resp.status_code == 501
    error = resp.json()["error"]
    assert "pip install 'fastvlm-gemini-hybrid[server]'" in error["message"]
    assert error["code"] == "missing_dependency"
    assert client.post("/v1/analyze", json={"prompt": "still", "mode": "local-only"}).status_code == 200


# ---------------------------------------------------------------------------------------------- several processes

# A worker process: its own app over fake backends, `n` requests, then it leaves the way `how` says.
WORKER = textwrap.dedent("""
    import os, sys
    sys.path[:0] = [{src!r}, {tests!r}]
    from fastapi.testclient import TestClient
    from fastvlm_gemini_hybrid.config import load_settings
    from fastvlm_gemini_hybrid.server import create_app
    from fakes import make_processor

    n, how = int(sys.argv[1]), sys.argv[2]
    proc = make_processor(load_settings(home=sys.argv[3]))
    with TestClient(create_app(processor=proc)) as client:
        for i in range(n):
            body = {{"prompt": f"{{os.getpid()}}-{{i}}", "mode": "local-only"}}
            assert client.post("/v1/analyze", json=body).status_code == 200
        proc.metrics.set_circuit("gemini", "open")
        print("ready", flush=True)
        if how == "wait":
            sys.stdin.readline()
        if how == "killed":
            os._exit(0)  # no atexit: as if killed; its live gauges must be dropped all the same
""")


def start_worker(tmp_path: Path, metrics_dir: Path, n: int, how: str) -> subprocess.Popen[str]:
    script = WORKER.format(src=SRC, tests=str(Path(__file__).resolve().parents[1]))
    env = {**os.environ, ENV: str(metrics_dir)}  # set before the process starts, as a server would
    return subprocess.Popen([sys.executable, "-c", script, str(n), how, str(tmp_path / f"home-{how}")],
                            env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_one_scrape_sums_every_worker_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, app_factory: Callable[..., Any],
) -> None:
    from fastapi.testclient import TestClient

    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    workers = {how: start_worker(tmp_path, metrics_dir, n, how) for how, n in (("exits", 2), ("killed", 3),
                                                                              ("wait", 4))}
    try:
        for how in ("exits", "killed"):
            out, err = workers[how].communicate(timeout=120)
            assert workers[how].returncode == 0 and "ready" in out, err
        assert workers["wait"].stdout is not None
        assert workers["wait"].stdout.readline().strip() == "ready", workers["wait"].stderr

        monkeypatch.setenv(ENV, str(metrics_dir))
        app, _proc = app_factory()  # this process is a worker too, and answers the scrape
        with TestClient(app) as client:
            assert client.post("/v1/analyze", json={"prompt": "here", "mode": "local-only"}).status_code == 200
            text, fams = scrape(client)
            assert_well_formed(text, fams)
            assert analyzed(fams) == 2 + 3 + 4 + 1
            assert local_calls(fams) == 2 + 3 + 4 + 1
            assert value(fams, f"{P}_request_seconds", f"{P}_request_seconds_count", backend="fastvlm") == 10
            assert value(fams, f"{P}_request_seconds", f"{P}_request_seconds_bucket", backend="fastvlm",
                         le="+Inf") == 10
            assert value(fams, f"{P}_queue_running", f"{P}_queue_running") == 0
            # Gauges count live processes only: the one still waiting, not the two that are gone.
            open_ = {"backend": "gemini", "state": "open"}
            assert value(fams, f"{P}_circuit_state", f"{P}_circuit_state", **open_) == 1

            workers["wait"].communicate(input="\n", timeout=120)
            assert workers["wait"].returncode == 0
            _, fams = scrape(client)
            assert value(fams, f"{P}_circuit_state", f"{P}_circuit_state", **open_) == 0
            assert analyzed(fams) == 10  # counters of exited processes still count
    finally:
        for worker in workers.values():
            if worker.poll() is None:
                worker.kill()
                worker.wait()


def test_multiprocess_directory_is_created_and_removed() -> None:
    with metrics_export.multiprocess_directory() as path:
        assert os.path.isdir(path) and not os.listdir(path)
        Path(path, "counter_hybrid-1.db").write_bytes(b"")
    assert not os.path.exists(path)


def test_ray_replicas_share_the_directory_they_are_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server_settings: Callable[..., Any],
) -> None:
    """`serve --ray` hands each replica the directory; a replica's /metrics then reads every replica's files.

    Ray is replaced by a stand-in whose `bind` builds the replica here: what is checked is the replica's part.
    """
    from fastapi.testclient import TestClient

    from fastvlm_gemini_hybrid.server import ray_serve

    built: list[Any] = []

    def deployment(**_options: Any) -> Callable[[type], type]:
        return lambda cls: type(cls.__name__, (cls,), {"bind": classmethod(lambda c, *a: built.append(c(*a)))})

    serve = types.ModuleType("ray.serve")
    serve.deployment = deployment  # type: ignore[attr-defined]
    serve.ingress = lambda *_a: lambda cls: cls  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "ray", types.ModuleType("ray"))
    monkeypatch.setitem(sys.modules, "ray.serve", serve)
    # The replica sets it in os.environ itself. `delenv` of an absent variable records nothing to undo, so
    # set it first: then the undo removes whatever the replica left (it leaked into later tests before).
    monkeypatch.setenv(ENV, "")
    monkeypatch.delenv(ENV)

    metrics_dir = tmp_path / "ray-metrics"
    other = start_worker(tmp_path, metrics_dir, 2, "exits")  # another replica's process
    out, err = other.communicate(timeout=120)
    assert other.returncode == 0 and "ready" in out, err

    ray_serve.build_deployment(server_settings(), 2, processor_factory=make_processor, metrics_dir=str(metrics_dir))
    assert os.environ[ENV] == str(metrics_dir)
    with TestClient(built[0].__serve_build_asgi_app__()) as client:
        assert client.post("/v1/analyze", json={"prompt": "replica", "mode": "local-only"}).status_code == 200
        _, fams = scrape(client)
    assert analyzed(fams) == 2 + 1 and local_calls(fams) == 3
