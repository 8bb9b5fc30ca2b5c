"""A bare HTTP/1.1 streaming POST for the benchmarks' load generator.

On a machine with no core to spare the client's CPU per received line is
taken from the servers under test, so the load generator reads the stream
with as little work as possible: one connection per request, chunked or
sized bodies, complete lines handed out as bytes. The same client drives
every HTTP side, so whatever it costs, it costs each of them alike.
"""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator


class HTTPStatusError(RuntimeError):
    pass


async def _body_pieces(reader: asyncio.StreamReader, headers: dict[bytes, bytes]) -> AsyncIterator[bytes]:
    if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        while True:
            size = int((await reader.readline()).split(b";", 1)[0], 16)
            if size == 0:
                return
            piece = await reader.readexactly(size + 2)
            yield piece[:-2]
    elif b"content-length" in headers:
        yield await reader.readexactly(int(headers[b"content-length"]))
    else:
        while piece := await reader.read(1 << 16):
            yield piece


async def post_lines(host: str, port: int, path: str, body: bytes) -> AsyncIterator[bytes]:
    """POST ``body`` (JSON) and yield the response's lines without their newline.
    A status other than 200 raises HTTPStatusError with the body."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(b"POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\nConnection: close\r\n\r\n%s"
                     % (path.encode(), host.encode(), port, len(body), body))
        status = (await reader.readline()).split(b" ", 2)
        headers: dict[bytes, bytes] = {}
        while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        if len(status) < 2 or status[1] != b"200":
            rest = b"".join([p async for p in _body_pieces(reader, headers)])
            raise HTTPStatusError(f"{path}: HTTP {b' '.join(status[1:]).decode().strip()}: {rest[:500]!r}")
        pending = b""
        async for piece in _body_pieces(reader, headers):
            pending += piece
            *lines, pending = pending.split(b"\n")
            for line in lines:
                yield line
        if pending:
            yield pending
    finally:
        writer.close()
