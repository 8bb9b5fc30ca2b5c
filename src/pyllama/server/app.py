"""The Litestar application factory.

``create_app`` wires configuration, the model store and the routers; the
inference routers are added beside the model-management one.  Run with
``uvicorn --factory pyllama.server.app:create_app``.
"""

from __future__ import annotations

import logging
import os

from litestar import Litestar, Response, get, route
from litestar.datastructures import State

from pyllama.config import Config
from pyllama.scheduler import Scheduler
from pyllama.server import metrics as prometheus
from pyllama.server.anthropic import anthropic_router
from pyllama.server.auth import ApiKeys, warn_if_exposed
from pyllama.server.errors import OLLAMA_HANDLERS
from pyllama.server.guard import RequestGuard
from pyllama.server.manage import models_router
from pyllama.server.ollama import inference_router
from pyllama.server.openai import openai_router
from pyllama.server.openapi import openapi_json
from pyllama.server.rerank import rerank_routers
from pyllama.server.responses import responses_router
from pyllama.server.ui import ui_files
from pyllama.store.layout import Store

log = logging.getLogger(__name__)

OLLAMA_API_VERSION = "0.33.0"


@route("/", http_method=["GET", "HEAD"])
async def root() -> Response[bytes]:
    return Response(content=b"Ollama is running", media_type="text/plain")


@route("/api/version", http_method=["GET", "HEAD"])
async def version() -> Response[dict[str, str]]:
    return Response(content={"version": OLLAMA_API_VERSION})


@get("/api/status")
async def status(state: State) -> Response[dict[str, dict[str, object]]]:
    """Ollama's cloud status. pyllama has no cloud models or proxied tools, so cloud is always
    disabled; ``source`` says whether the environment also asks for that (OLLAMA_NO_CLOUD)."""
    config: Config = state.config
    return Response(content={"cloud": {"disabled": True, "source": "env" if config.no_cloud else "none"}})


def runner_threads(env: dict[str, str] | None = None) -> int:
    """Threads per runner from ``PYLLAMA_NUM_THREADS`` (0 or unset: the engine's default).

    Not an Ollama setting; tests and shared machines set 1 because ggml's
    worker threads spin.
    """
    raw = (env if env is not None else os.environ).get("PYLLAMA_NUM_THREADS", "").strip()
    return int(raw) if raw.isdigit() else 0


def create_app(config: Config | None = None) -> Litestar:
    """Build the app for ``config`` (default: from the environment)."""
    config = config or Config.from_env()
    store = Store(config.models, noprune=config.noprune)
    state = State({"config": config, "store": store})
    keys = ApiKeys.from_config(config)  # ApiKeysError if the keys file cannot be read
    warn_if_exposed(config, keys)
    metrics = prometheus.install(state) if prometheus.metrics_enabled(config, keys.enabled) else None

    def on_startup(app: Litestar) -> None:
        store.root.mkdir(parents=True, exist_ok=True)
        try:
            store.prune_on_start()
        except OSError as exc:
            log.warning("startup prune failed: %s", exc)
        # One scheduler per app, created inside the server's event loop.
        app.state.scheduler = Scheduler(config, n_threads=runner_threads())
        if metrics is not None:
            app.state.scheduler.observer = metrics
        keys.watch_sighup()

    async def on_shutdown(app: Litestar) -> None:
        keys.unwatch_sighup()
        scheduler: Scheduler | None = app.state.get("scheduler")
        if scheduler is not None:
            await scheduler.close()

    app = Litestar(
        route_handlers=[root, version, status, models_router, inference_router, openai_router, anthropic_router,
                        responses_router, *rerank_routers, openapi_json, ui_files],
        openapi_config=None,  # ours (server/openapi.py) describes the bodies the handlers decode
        state=state,
        exception_handlers=OLLAMA_HANDLERS,  # type: ignore[arg-type]
        guards=[keys.guard] if keys.enabled else None,
        on_startup=[on_startup],
        on_shutdown=[on_shutdown],
        request_max_body_size=None,
        debug=False,
    )
    if metrics is not None:
        app.register(prometheus.metrics_route)
    # In front of everything Litestar does, unknown paths included.
    inner = metrics.wrap(app.asgi_handler) if metrics is not None else app.asgi_handler  # type: ignore[arg-type]
    app.asgi_handler = RequestGuard(inner, bind_host=config.host, origins=config.origins)
    return app
