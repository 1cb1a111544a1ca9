"""`serve`: the HTTP API, the OpenAI-compatible API and the web UI (FastAPI + uvicorn).

Binds 127.0.0.1 unless told otherwise: exposing a model server (and, with Gemini configured, a
paid API key) on every interface is a decision the user must make explicitly, ideally together
with `FASTVLM_HYBRID_API_KEYS`. `--ray --replicas N` runs the processor as a Ray Serve deployment.
"""

from __future__ import annotations

import argparse

from ..errors import BadInputError
from .common import add_json_flag, info, settings_from_args


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("serve", help="run the HTTP server and web UI", description=__doc__)
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8080, help="TCP port (default 8080; 0 picks a free one)")
    p.add_argument("--concurrency", type=int, default=None, metavar="N", help="model requests run at once")
    p.add_argument("--queue", type=int, default=None, metavar="N", help="requests that may wait; beyond, 503")
    p.add_argument("--ray", action="store_true", help="serve through Ray Serve (the 'ray' extra)")
    p.add_argument("--replicas", type=int, default=2, metavar="N", help="Ray Serve replicas, each with its own model")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    add_json_flag(p)
    p.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    from .._optional import require

    if not 0 <= args.port <= 65535:
        raise BadInputError(f"--port must be between 0 and 65535, got {args.port}")
    if args.replicas < 1:
        raise BadInputError("--replicas must be at least 1")
    if args.ray and args.port == 0:
        # Ray's proxy would bind some free port but never says which: nobody could reach the server.
        raise BadInputError("--port 0 cannot be used with --ray (Ray does not report the port it picks); give a port")
    settings = settings_from_args(args, server_concurrency=args.concurrency, server_queue=args.queue)
    if args.host not in ("127.0.0.1", "localhost", "::1") and not settings.api_keys:
        info(f"warning: listening on {args.host} without API keys; set FASTVLM_HYBRID_API_KEYS to require them")
    if args.ray:
        from ..server.ray_serve import serve_with_ray

        return serve_with_ray(settings, host=args.host, port=args.port, replicas=args.replicas)
    require("uvicorn", "server", "the HTTP server")
    from ..server import create_app
    from ..server.app import run_uvicorn

    app = create_app(settings=settings)
    info(f"fastvlm-hybrid serving on http://{args.host}:{args.port}/ (Ctrl-C to stop)")
    run_uvicorn(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0
