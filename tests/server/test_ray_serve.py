"""Ray Serve scale-out: two replicas, each with its own processor, behind the same HTTP API.

The in-process cluster test is slow (Ray starts a local cluster: ~20-60 s on a small box), so marked
`slow`; skipped when the `ray` extra is not installed. Replicas get fake backends through
`processor_factory` (test-only injection: product code builds the configured backends). The shipped
`deploy/ray-serve.yaml` and `app_builder`'s arguments are checked fast, without starting Ray;
`test_ray_cli.py` runs the CLI and `serve run` as real processes.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

import fakes
from fakes import make_processor
from fastvlm_gemini_hybrid.config import Settings, load_settings
from fastvlm_gemini_hybrid.errors import BadInputError
from fastvlm_gemini_hybrid.server.ray_serve import app_builder, parse_app_args
from synth_media import picture

from .conftest import free_port

SHIPPED_CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "ray-serve.yaml"


def fake_processor(settings: Settings) -> Any:
    """Runs inside each replica: a processor over fake backends that name their process."""
    import os

    return make_processor(settings, lambda req: f"fake local answer from pid {os.getpid()}", "fake cloud answer")


@pytest.fixture
def ray_cluster() -> Any:
    ray = pytest.importorskip("ray")
    serve = pytest.importorskip("ray.serve")
    from ray import cloudpickle

    # The fake factory lives in this test module and tests/fakes.py, which replicas cannot import: ship by value.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    cloudpickle.register_pickle_by_value(fakes)
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
    try:
        yield serve
    finally:
        serve.shutdown()
        ray.shutdown()
        cloudpickle.unregister_pickle_by_value(fakes)
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


@pytest.mark.slow
def test_two_replicas_answer_behind_one_http_api(ray_cluster: Any, tmp_path: Path) -> None:
    from fastvlm_gemini_hybrid.server.ray_serve import build_deployment

    serve = ray_cluster
    port = free_port()
    settings = load_settings(home=tmp_path / "home", cache_enabled=False, audit_enabled=False)
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(build_deployment(settings, 2, processor_factory=fake_processor, num_cpus=0.5),
              name="hybrid-test", route_prefix="/")

    url = f"http://127.0.0.1:{port}"
    replicas: set[str] = set()
    pids: set[str] = set()
    deadline = time.monotonic() + 60
    with httpx.Client(base_url=url, timeout=30) as client:
        i = 0
        while len(replicas) < 2 and time.monotonic() < deadline:
            i += 1
            resp = client.post("/v1/analyze", data={"prompt": "Describe", "mode": "local-only"},
                               files={"file": ("a.png", picture((i % 250, 10, 10), (16, 16)), "image/png")})
            assert resp.status_code == 200, resp.text
            body = resp.json()
            assert body["backend"] == "fastvlm" and body["response"].startswith("fake local answer from pid ")
            replicas.add(resp.headers["x-hybrid-replica"])
            pids.add(body["response"].rsplit(" ", 1)[-1])
        # the same contract as the single-process server: errors, health
        bad = client.post("/v1/analyze", data={"prompt": ""},
                          files={"file": ("a.png", picture((1, 10, 10), (16, 16)), "image/png")})
        health = client.get("/healthz")
    assert len(replicas) == 2, f"only {replicas} answered in {i} requests"
    assert len(pids) == 2  # each replica owns its processor, in its own process
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "bad_input"
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    assert health.headers["x-hybrid-replica"] in replicas


def test_shipped_config_passes_rays_schema_and_builds() -> None:
    """`serve run`/`serve deploy` validate the file with this schema, then call the builder with `args`."""
    import importlib
    import inspect

    pytest.importorskip("ray.serve")
    from ray.serve import Application
    from ray.serve.schema import ServeDeploySchema

    config = ServeDeploySchema.model_validate(yaml.safe_load(SHIPPED_CONFIG.read_text()))
    assert config.http_options.host == "127.0.0.1"  # this machine only, as the file's comment promises
    [app] = config.applications
    module, _, attr = app.import_path.partition(":")
    builder = getattr(importlib.import_module(module), attr)
    assert builder is app_builder
    assert len(inspect.signature(builder).parameters) == 1  # Ray calls builders with the args dict only
    assert parse_app_args(app.args) == (2, 1.0)
    built = builder(app.args)
    assert isinstance(built, Application)
    deployment = built._bound_deployment  # no public accessor: the options Ray will deploy with
    assert deployment.num_replicas == 2 and deployment.ray_actor_options == {"num_cpus": 1.0}


def test_app_builder_reads_cli_strings_and_yaml_numbers() -> None:
    assert parse_app_args({}) == (2, 1.0)
    assert parse_app_args({"replicas": "3", "num_cpus": "0.5"}) == (3, 0.5)  # `serve run ... replicas=3`
    assert parse_app_args({"replicas": 4, "num_cpus": 0}) == (4, 0.0)  # unquoted numbers in a YAML file


@pytest.mark.parametrize(("args", "named"), [
    ({"replicas": "0"}, "replicas must be a whole number of at least 1, got '0'"),
    ({"replicas": "x"}, "replicas must be a whole number of at least 1, got 'x'"),
    ({"replicas": "1.5"}, "got '1.5'"),
    ({"replicas": True}, "got True"),  # YAML's `yes`
    ({"num_cpus": "-1"}, "num_cpus (CPUs reserved per replica) must be a number of at least 0, got '-1'"),
    ({"num_cpus": "nan"}, "got 'nan'"),
    ({"replica": "4"}, "unknown app_builder argument(s) replica; expected replicas, num_cpus"),
])
def test_app_builder_rejects_bad_args_by_name(args: dict[str, Any], named: str) -> None:
    # Rejected before Ray is imported: runs without the `ray` extra too.
    with pytest.raises(BadInputError) as exc:
        app_builder(args)
    assert named in str(exc.value)


def test_cli_ray_refuses_port_zero(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Ray's proxy would take some free port and never tell: refused before Ray starts (needs no `ray`)."""
    from fastvlm_gemini_hybrid.cli import main
    from fastvlm_gemini_hybrid.server import ray_serve

    def started(*_a: Any, **_kw: Any) -> int:
        pytest.fail("serve --ray --port 0 started Ray")  # a regression fails here instead of serving forever

    monkeypatch.setattr(ray_serve, "serve_with_ray", started)
    assert main(["serve", "--ray", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--port 0" in err and "--ray" in err and "Traceback" not in err


@pytest.mark.parametrize(("address", "joined"), [(None, False), ("ray://head.example:10001", True)])
def test_serve_with_ray_only_removes_its_own_app_from_a_joined_cluster(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, address: str | None, joined: bool,
) -> None:
    """Own cluster: Serve is shut down at exit. A cluster named by RAY_ADDRESS: only our app is deleted.

    Ray's entry points are replaced by recorders (no cluster starts); Ctrl-C arrives once serving.
    """
    ray = pytest.importorskip("ray")
    serve = pytest.importorskip("ray.serve")
    import time as time_module

    from fastvlm_gemini_hybrid.server import ray_serve

    calls: list[tuple[str, Any]] = []
    state = {"up": False}

    def init(**kw: Any) -> None:
        calls.append(("init", kw.get("address")))
        state["up"] = True

    def interrupted(_s: float) -> None:
        raise KeyboardInterrupt

    if address is None:
        monkeypatch.delenv("RAY_ADDRESS", raising=False)
    else:
        monkeypatch.setenv("RAY_ADDRESS", address)
    monkeypatch.setattr(ray, "init", init)
    monkeypatch.setattr(ray, "is_initialized", lambda: state["up"])
    monkeypatch.setattr(ray, "shutdown", lambda: calls.append(("ray.shutdown", None)))
    monkeypatch.setattr(serve, "start", lambda **kw: calls.append(("start", kw["http_options"]["port"])))
    monkeypatch.setattr(serve, "run", lambda app, **kw: calls.append(("run", kw["name"])))
    monkeypatch.setattr(serve, "delete", lambda name, **kw: calls.append(("delete", name)))
    monkeypatch.setattr(serve, "shutdown", lambda: calls.append(("serve.shutdown", None)))
    monkeypatch.setattr(time_module, "sleep", interrupted)

    settings = load_settings(home=tmp_path / "home", cache_enabled=False, audit_enabled=False)
    assert ray_serve.serve_with_ray(settings, host="127.0.0.1", port=18123, replicas=2) == 0
    ending = [("delete", "fastvlm-hybrid")] if joined else [("serve.shutdown", None)]
    assert calls == [("init", address or "local"), ("start", 18123), ("run", "fastvlm-hybrid"), *ending,
                     ("ray.shutdown", None)]
