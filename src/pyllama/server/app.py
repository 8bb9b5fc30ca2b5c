"""The Litestar application factory.

``create_app`` wires configuration, the model store and the routers; the
inference routers are added beside the model-management one.  Run with
``uvicorn --factory pyllama.server.app:create_app``.
"""

from __future__ import annotations

import logging

from litestar import Litestar, Response, route
from litestar.datastructures import State

from pyllama.config import Config
from pyllama.server.errors import EXCEPTION_HANDLERS
from pyllama.server.guard import RequestGuard
from pyllama.server.models import models_router
from pyllama.store.layout import Store

log = logging.getLogger(__name__)

OLLAMA_API_VERSION = "0.33.0"


@route("/", http_method=["GET", "HEAD"])
async def root() -> Response[bytes]:
    return Response(content=b"Ollama is running", media_type="text/plain")


@route("/api/version", http_method=["GET", "HEAD"])
async def version() -> Response[dict[str, str]]:
    return Response(content={"version": OLLAMA_API_VERSION})


def create_app(config: Config | None = None) -> Litestar:
    """Build the app for ``config`` (default: from the environment)."""
    config = config or Config.from_env()
    store = Store(config.models, noprune=config.noprune)

    def on_startup() -> None:
        store.root.mkdir(parents=True, exist_ok=True)
        try:
            store.prune_on_start()
        except OSError as exc:
            log.warning("startup prune failed: %s", exc)

    app = Litestar(
        route_handlers=[root, version, models_router],
        state=State({"config": config, "store": store}),
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        on_startup=[on_startup],
        request_max_body_size=None,
        debug=False,
    )
    # In front of everything Litestar does, unknown paths included.
    app.asgi_handler = RequestGuard(app.asgi_handler, bind_host=config.host, origins=config.origins)
    return app
