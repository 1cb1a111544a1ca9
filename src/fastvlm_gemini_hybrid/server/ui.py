"""The web UI and the files in-browser inference needs, all served from this server.

`/` is the page, `/ui/*` its scripts and styles (plain ES modules, no build step: `app.js` the shell,
`views/*.js` one module per view, `lib/*.js` what they share; see docs/ui.md), `/ui/vendor/*`
transformers.js and ONNX Runtime's wasm files (copied there by `python -m
fastvlm_gemini_hybrid.server.vendor_web`, with axe-core for the browser tests when present),
`/models/<name>/*` the ONNX bundles under `<home>/models/onnx`. A strict Content-Security-Policy on the
page means the browser itself refuses to fetch anything from another origin: no CDN, no remote model hub.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .state import ServerState

if TYPE_CHECKING:
    from fastapi import FastAPI

STATIC = Path(__file__).parent / "static"

CSP = "; ".join([
    "default-src 'self'",
    "script-src 'self' 'wasm-unsafe-eval'",
    "connect-src 'self' blob: data:",
    "img-src 'self' blob: data:",
    "media-src 'self' blob: mediastream:",
    "worker-src 'self' blob:",
    "style-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
])


def mount(app: FastAPI, state: ServerState) -> None:
    from fastapi.responses import FileResponse
    from fastapi.staticfiles import StaticFiles

    headers = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
               "Permissions-Policy": "camera=(self), microphone=()"}

    @app.get("/", include_in_schema=False)
    async def index() -> Any:
        return FileResponse(STATIC / "index.html", headers=headers, media_type="text/html")

    try:  # StaticFiles refuses a missing directory; an empty one just serves 404s
        state.browser_models_dir.mkdir(parents=True, exist_ok=True)
    except OSError:
        pass
    app.mount("/ui", StaticFiles(directory=STATIC, check_dir=False), name="ui")
    app.mount("/models", StaticFiles(directory=state.browser_models_dir, check_dir=False), name="models")
