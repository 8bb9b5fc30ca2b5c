"""The thread-to-stream bridge used by create, pull and push."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from litestar.response import Stream

from pyllama.server.jobs import job_response
from pyllama.store.errors import InvalidRequest, NotFound


def test_client_disconnect_cancels_the_job() -> None:
    cancelled = threading.Event()

    def job(emit: Any, cancel: threading.Event) -> None:
        emit({"status": "working"})
        while not cancel.wait(0.01):
            emit({"status": "still working"})
        cancelled.set()

    async def main() -> None:
        response = await job_response(job, stream=True)
        assert isinstance(response, Stream)
        body = response.iterator
        first = await body.__anext__()  # type: ignore[union-attr]
        assert first == b'{"status":"working"}\n'
        await body.aclose()  # type: ignore[union-attr]

    asyncio.run(main())
    assert cancelled.wait(10)


def test_errors_before_and_after_the_first_line() -> None:
    def early(emit: Any, cancel: threading.Event) -> None:
        raise NotFound("model 'x' not found")

    def late(emit: Any, cancel: threading.Event) -> None:
        emit({"status": "pulling manifest"})
        raise InvalidRequest("boom")

    async def main() -> None:
        response = await job_response(early, stream=True)
        assert response.status_code == 404 and response.content == b'{"error":"model \'x\' not found"}'
        response = await job_response(late, stream=False)
        assert response.status_code == 400 and response.content == b'{"error":"boom"}'
        response = await job_response(late, stream=True)
        lines = [chunk async for chunk in response.iterator]  # type: ignore[union-attr]
        assert lines == [b'{"status":"pulling manifest"}\n', b'{"error":"boom"}\n']

    asyncio.run(main())
