"""`pyllama serve`: run the API server until Ctrl+C or SIGTERM.

On that signal the answers still streaming end at once with the error
``the server shut down`` (the runners are stopped with that reason) instead of
holding the shutdown until they finish or being cut off without a word.
"""

from __future__ import annotations

import asyncio
import os
from types import FrameType
from typing import Any

import uvicorn


class _Server(uvicorn.Server):
    """uvicorn's server, plus: the first shutdown signal stops the models."""

    def __init__(self, config: uvicorn.Config, app: Any) -> None:
        super().__init__(config)
        self._app = app
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Task[None] | None = None

    async def startup(self, sockets: Any = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().startup(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        if self._loop is not None and self._stopping is None:
            self._loop.call_soon_threadsafe(self._stop_models)

    def _stop_models(self) -> None:
        scheduler = self._app.state.get("scheduler")
        if scheduler is not None and self._stopping is None:
            self._stopping = asyncio.ensure_future(scheduler.close())


def serve(overrides: dict[str, str], verbose: bool = False) -> int:
    """``overrides`` (from serve's flags) win over the PYLLAMA_*/OLLAMA_* variables."""
    from pyllama.config import Config
    from pyllama.server.app import create_app

    os.environ.update(overrides)
    config = Config.from_env()
    app = create_app(config)
    server = _Server(uvicorn.Config(app, host=config.host, port=config.port,
                                    log_level="info" if verbose else "warning", access_log=verbose), app)
    try:
        server.run()
    except KeyboardInterrupt:  # uvicorn raises the Ctrl+C it held back once it has stopped
        pass
    return 0
