"""Run a blocking store job (create, pull, push) in a worker thread and
stream its progress to the HTTP response.

The job reports through ``emit``; items cross into the event loop with
``call_soon_threadsafe``.  If the client goes away the generator is closed
and the job's cancel event is set, which the job checks between steps.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any

import msgspec
from litestar import Response
from litestar.response import Stream

from pyllama.server.errors import error_response
from pyllama.store.errors import StoreError

log = logging.getLogger(__name__)

Job = Callable[[Callable[[dict[str, Any]], None], threading.Event], None]

_DONE = object()


class JobError(Exception):
    def __init__(self, message: str, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code


async def run_job(job: Job) -> AsyncGenerator[dict[str, Any], None]:
    """Yield the job's progress dicts; raise JobError if it fails."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()
    cancel = threading.Event()

    def emit(item: dict[str, Any]) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:
            cancel.set()  # the event loop is gone: stop the job

    def target() -> None:
        try:
            job(emit, cancel)
        except StoreError as exc:
            loop.call_soon_threadsafe(queue.put_nowait, JobError(exc.message, exc.status_code))
        except Exception as exc:  # noqa: BLE001 - reported to the client
            log.exception("job failed")
            loop.call_soon_threadsafe(queue.put_nowait, JobError(str(exc) or exc.__class__.__name__, 500))
        finally:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, _DONE)
            except RuntimeError:
                pass  # loop closed: nobody is listening any more

    thread = threading.Thread(target=target, name="pyllama-job", daemon=True)
    thread.start()
    try:
        while True:
            item = await queue.get()
            if item is _DONE:
                return
            if isinstance(item, JobError):
                raise item
            yield item
    finally:
        cancel.set()


async def _ndjson(first: dict[str, Any], rest: AsyncGenerator[dict[str, Any], None]) -> AsyncIterator[bytes]:
    try:
        yield msgspec.json.encode(first) + b"\n"
        async for item in rest:
            yield msgspec.json.encode(item) + b"\n"
    except JobError as exc:
        yield msgspec.json.encode({"error": str(exc)}) + b"\n"
    finally:
        await rest.aclose()  # client gone: cancel the job now, not at garbage collection


async def job_response(job: Job, stream: bool) -> Response[Any]:
    """NDJSON progress stream, or (``stream: false``) the last status / the error.

    A job that fails before reporting anything gets a real status code and a
    JSON error body; once lines have been sent, an error is the last line.
    """
    items = run_job(job)
    try:
        first = await items.__anext__()
    except StopAsyncIteration:
        first = {}
    except JobError as exc:
        return error_response(str(exc), exc.status_code)
    if stream:
        return Stream(_ndjson(first, items), media_type="application/x-ndjson")
    last = first
    try:
        async for item in items:
            last = item
    except JobError as exc:
        return error_response(str(exc), exc.status_code)
    return Response(content=msgspec.json.encode(last), media_type="application/json")
