"""Scale past one process: the same app as a Ray Serve deployment, N replicas, each with its own model.

    fastvlm-hybrid serve --ray --replicas 4
    serve run fastvlm_gemini_hybrid.server.ray_serve:app_builder replicas=4   # Ray's own CLI
    serve run deploy/ray-serve.yaml                                          # a config file

Why Ray Serve: each replica is its own process that loads its own local model (no GPU context or
Python GIL shared across replicas), Ray's proxy spreads requests across replicas, and the HTTP API
is unchanged because every replica runs `create_app()` as its ASGI ingress (streaming, lifespan,
errors and all). Every response carries `X-Hybrid-Replica` so operators (and the tests) can see
which replica answered. Ray is the optional `ray` extra.

Jobs: every replica's job manager keeps job state in the application's one named Ray actor
(job_store.py) instead of its own memory, so `/v1/jobs/{id}`, its events and DELETE answer alike
from every replica, and the limit on running jobs is the application's.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Mapping
from typing import Any

from .._optional import require
from ..config import Settings, load_settings
from ..errors import BadInputError
from ..metrics_export import MULTIPROC_ENV, multiprocess_directory

log = logging.getLogger(__name__)

REPLICA_HEADER = b"x-hybrid-replica"

ProcessorFactory = Callable[[Settings], Any]


def settings_payload(settings: Settings) -> dict[str, Any]:
    """Settings as plain values that survive Ray's pickling, secrets included (replicas need them)."""
    payload = settings.model_dump(mode="json", exclude={"config_file"})
    payload["api_keys"] = [k.get_secret_value() for k in settings.api_keys]
    for name in ("gemini_api_key", "openai_api_key"):
        secret = getattr(settings, name, None)
        if secret is not None:
            payload[name] = secret.get_secret_value()
    return payload


def build_deployment(
    settings: Settings, replicas: int, *, processor_factory: ProcessorFactory | None = None,
    num_cpus: float = 1.0, metrics_dir: str | None = None,
) -> Any:
    """The bound Ray Serve application (for `serve.run`): `replicas` copies of the HTTP app.

    `processor_factory(settings)` builds each replica's processor; by default the configured one
    (real backends). Tests pass a factory that builds fake backends instead. With `metrics_dir` (a
    directory on this machine: `serve --ray` without a cluster to join), the replicas keep their
    Prometheus counters in prometheus_client's multiprocess files there, so the `/metrics` of
    whichever replica Ray's proxy picks reports all of them.
    """
    serve = require("ray.serve", "ray", "serving with Ray")

    @serve.deployment(num_replicas=replicas, ray_actor_options={"num_cpus": num_cpus})
    @serve.ingress()
    class HybridReplica:
        def __init__(self, values: dict[str, Any], factory: ProcessorFactory | None,
                     metrics_dir: str | None = None) -> None:
            self.settings = Settings(**values)
            self.factory = factory
            if metrics_dir is not None:
                # Read when the app's counters are made (below); this process is this replica's alone.
                os.environ[MULTIPROC_ENV] = metrics_dir

        def __serve_build_asgi_app__(self) -> Any:
            from . import create_app

            processor = self.factory(self.settings) if self.factory is not None else None
            return ReplicaHeader(with_ray_jobs(create_app(processor, settings=self.settings)), _replica_id())

    return HybridReplica.bind(settings_payload(settings), processor_factory, metrics_dir)


def with_ray_jobs(app: Any) -> Any:
    """`app` with its job manager on the application's Ray job store instead of this process's memory.

    Swapped before the app serves anything (its lifespan closes whichever manager it has then).
    Outside a Serve replica there is no application to share jobs with: the memory store stays.
    """
    from .job_manager import JobManager
    from .job_store import RayJobStore, actor_name

    try:
        from ray import serve

        app_name = serve.get_replica_context().app_name
    except Exception:  # noqa: BLE001 - not in a replica (or a Ray without the context): nothing to share
        log.warning("no Ray Serve replica context: jobs stay in this process's memory")
        return app
    state = app.state  # the app's ServerState (GuardMiddleware's own attribute)
    state.jobs = JobManager(state, RayJobStore(actor_name(app_name)))
    return app


class ReplicaHeader:
    """Pure ASGI: add `X-Hybrid-Replica: <id>` to every HTTP response of this replica."""

    def __init__(self, app: Any, replica_id: str) -> None:
        self.app = app
        self.header = (REPLICA_HEADER, replica_id.encode())

    def __getattr__(self, name: str) -> Any:
        return getattr(self.app, name)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def tagged(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), self.header]}
            await send(message)

        await self.app(scope, receive, tagged)


def _replica_id() -> str:
    try:
        from ray import serve

        return str(serve.get_replica_context().replica_id.unique_id)
    except Exception:  # noqa: BLE001 - outside a replica (or an older Ray): the process id still tells them apart
        return f"pid-{os.getpid()}"


APP_ARGS = ("replicas", "num_cpus")


def app_builder(args: dict[str, Any]) -> Any:
    """Entry point for Ray's `serve run module:app_builder replicas=N` and `deploy/ray-serve.yaml`.

    Settings come from the environment and config file as for `fastvlm-hybrid serve`.
    """
    replicas, num_cpus = parse_app_args(args)
    return build_deployment(load_settings(), replicas, num_cpus=num_cpus)


def parse_app_args(args: Mapping[str, Any]) -> tuple[int, float]:
    """(replicas, num_cpus) from Ray's builder args, or a `BadInputError` naming the bad one.

    Ray hands `key=value` words and the YAML's `args` over unchecked (as strings, or whatever YAML
    parsed): without this a typo such as `replica=4` was silently ignored, and `replicas=x` failed
    with int()'s bare "invalid literal" message.
    """
    unknown = sorted(set(args) - set(APP_ARGS))
    if unknown:
        raise BadInputError(f"unknown app_builder argument(s) {', '.join(unknown)}; expected {', '.join(APP_ARGS)}")
    raw_replicas = args.get("replicas", 2)
    try:
        replicas = int(str(raw_replicas).strip())  # str() first: 2.5 or True must not pass as 2 or 1
    except ValueError:
        replicas = 0
    if replicas < 1:
        raise BadInputError(f"replicas must be a whole number of at least 1, got {raw_replicas!r}")
    raw_cpus = args.get("num_cpus", 1)
    try:
        num_cpus = float(str(raw_cpus).strip())
    except ValueError:
        num_cpus = -1.0
    if not (math.isfinite(num_cpus) and num_cpus >= 0):
        raise BadInputError(f"num_cpus (CPUs reserved per replica) must be a number of at least 0, got {raw_cpus!r}")
    return replicas, num_cpus


APP_NAME = "fastvlm-hybrid"


def serve_with_ray(settings: Settings, *, host: str, port: int, replicas: int) -> int:
    """Run the deployment on host:port and block until interrupted (Ctrl-C, SIGTERM).

    Ray starts locally for this process, unless `RAY_ADDRESS` names a cluster to join; then only
    our application is removed at the end, so other applications on that cluster keep running.
    """
    ray = require("ray", "ray", "serving with Ray")
    serve = require("ray.serve", "ray", "serving with Ray")
    import contextlib
    import signal
    import sys
    import time

    # "local" explicitly: a bare ray.init() would also join a cluster left by `ray start`, and
    # shutting Serve down there at exit would stop other people's applications.
    address = os.environ.get("RAY_ADDRESS") or "local"
    joined = address != "local"

    def _stop(_signum: int, _frame: Any) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut the shutdown short
        raise KeyboardInterrupt  # SIGTERM (systemd, docker stop, timeout) shuts Ray down like Ctrl-C

    previous = signal.signal(signal.SIGTERM, _stop)
    # The replicas' shared metrics files, when they all run on this machine (our own local Ray); on
    # a joined cluster they may not, and each replica's /metrics reports itself (docs/server.md).
    metrics = contextlib.nullcontext(None) if joined else multiprocess_directory()
    # Ray's driver prints replicas' stdout and raylet notices (one comes at every shutdown) on stdout;
    # `serve` answers nothing there, so stdout stays empty for whoever reads it, as without --ray.
    with contextlib.redirect_stdout(sys.stderr), metrics as metrics_dir:
        try:
            ray.init(address=address, ignore_reinit_error=True, include_dashboard=False)
            # ray.init installs a C++ failure-signal handler for SIGTERM: it printed a crash dump
            # ("*** SIGTERM received ... PC: @ ...") and, after our shutdown, aborted (exit 134).
            signal.signal(signal.SIGTERM, _stop)
            serve.start(http_options={"host": host, "port": port})
            serve.run(build_deployment(settings, replicas, metrics_dir=metrics_dir), name=APP_NAME, route_prefix="/")
            noun = "replica" if replicas == 1 else "replicas"
            # stderr, as every status line of the CLI that calls this (the server does not import the CLI)
            print(f"fastvlm-hybrid serving {replicas} Ray Serve {noun} on http://{host}:{port}/ (Ctrl-C to stop)",
                  file=sys.stderr, flush=True)
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
        finally:
            if ray.is_initialized():  # interrupted during ray.init: nothing of ours to shut down
                if joined:
                    with contextlib.suppress(Exception):  # interrupted before serve.run: nothing to delete
                        serve.delete(APP_NAME)
                else:
                    serve.shutdown()
                ray.shutdown()  # on a joined cluster this only disconnects
            signal.signal(signal.SIGTERM, previous)
    return 0
