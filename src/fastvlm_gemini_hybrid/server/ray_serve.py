"""Scale past one process: the same app as a Ray Serve deployment, N replicas, each with its own model.

    fastvlm-hybrid serve --ray --replicas 4

Why Ray Serve: each replica loads its own local model (no sharing of a GPU context across
processes), Ray's proxy spreads requests across replicas, and the HTTP API is unchanged because
every replica runs `create_app()` behind `serve.ingress`. Ray is the optional `ray` extra.
"""

from __future__ import annotations

from typing import Any

from .._optional import require
from ..config import Settings


def build_deployment(settings: Settings, replicas: int) -> Any:
    """The bound Ray Serve application (for `serve.run`), replicas built from `settings`."""
    serve = require("ray.serve", "ray", "serving with Ray")
    from . import create_app

    payload = settings.model_dump(mode="json", exclude={"config_file"})
    payload["api_keys"] = [k.get_secret_value() for k in settings.api_keys]
    if settings.gemini_api_key is not None:
        payload["gemini_api_key"] = settings.gemini_api_key.get_secret_value()
    if settings.openai_api_key is not None:
        payload["openai_api_key"] = settings.openai_api_key.get_secret_value()

    @serve.deployment(num_replicas=replicas, ray_actor_options={"num_cpus": 1})
    class HybridReplica:
        def __init__(self, values: dict[str, Any]) -> None:
            self.app = create_app(settings=Settings(**values))

        async def __call__(self, request: Any) -> Any:
            # Forward the raw ASGI request to this replica's FastAPI app.
            from starlette.responses import Response

            scope, receive = request.scope, request.receive
            started: dict[str, Any] = {}
            chunks: list[bytes] = []

            async def send(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    started.update(message)
                elif message["type"] == "http.response.body":
                    chunks.append(message.get("body", b""))

            await self.app(scope, receive, send)
            headers = {k.decode(): v.decode() for k, v in started.get("headers", [])}
            return Response(b"".join(chunks), status_code=started.get("status", 500), headers=headers)

    return HybridReplica.bind(payload)


def serve_with_ray(settings: Settings, *, host: str, port: int, replicas: int) -> int:
    """Start Ray locally, run the deployment on host:port and block until interrupted."""
    ray = require("ray", "ray", "serving with Ray")
    serve = require("ray.serve", "ray", "serving with Ray")
    import time

    ray.init(ignore_reinit_error=True, include_dashboard=False)
    serve.start(http_options={"host": host, "port": port})
    serve.run(build_deployment(settings, replicas), route_prefix="/")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        serve.shutdown()
    return 0
