"""The scheduler's view of the RPC servers it was given (PYLLAMA_RPC_SERVERS).

Before each load the servers are probed (``wire.probe``, in a thread). One
that is down fails the load with an error naming it, unless it is one a
runner lost while serving (a server that died mid-stream): then the model
is reloaded without it and a log line says so, until it answers again.
ggml-rpc's server serves one client at a time, so the scheduler keeps at most
one runner on these servers (``exclusive``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from pyllama.rpc.wire import DEFAULT_TIMEOUT, RemoteServer, RpcUnreachableError, parse_servers, probe

log = logging.getLogger("pyllama.rpc")


def parse_tensor_split(text: str) -> tuple[float, ...]:
    """PYLLAMA_TENSOR_SPLIT: comma-separated non-negative shares, e.g. ``3,1``."""
    if not text.strip():
        return ()
    try:
        shares = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise ValueError(f"PYLLAMA_TENSOR_SPLIT must be comma-separated numbers, not {text!r}") from None
    if any(not 0 <= share < float("inf") for share in shares) or not sum(shares) > 0:
        raise ValueError(f"PYLLAMA_TENSOR_SPLIT shares must be >= 0 and not all zero, not {text!r}")
    return shares


class RpcPool:
    """The configured endpoints, which of them a runner lost, and their last known free memory."""

    def __init__(self, servers: str | Iterable[str], *, timeout: float = DEFAULT_TIMEOUT,
                 major: int | None = None) -> None:
        self.servers = parse_servers(servers) if isinstance(servers, str) else tuple(servers)
        self.major = major or 0  # the RPC protocol major version this build speaks
        if self.servers and major is None:
            from pyllama import _native

            if not _native.supports_rpc():
                raise ValueError("PYLLAMA_RPC_SERVERS is set but this build has no RPC back-end (GGML_RPC=OFF)")
            self.major = _native.rpc_protocol_version()[0]
        self.timeout = timeout
        self.lost: set[str] = set()
        self.free: int | None = None  # remote bytes free at the last probe (None: never probed)

    def __bool__(self) -> bool:
        return bool(self.servers)

    async def usable(self) -> tuple[str, ...]:
        """The endpoints to load with now. Raises RpcUnreachableError for a
        server that is down and was never lost by a runner."""
        results = await asyncio.gather(*(asyncio.to_thread(self._probe, e) for e in self.servers),
                                       return_exceptions=True)
        up: list[RemoteServer] = []
        for endpoint, result in zip(self.servers, results):
            if isinstance(result, RemoteServer):
                if endpoint in self.lost:
                    log.warning("RPC server %s answers again; loading with it", endpoint)
                    self.lost.discard(endpoint)
                up.append(result)
            elif isinstance(result, RpcUnreachableError) and endpoint in self.lost:
                log.warning("%s; loading without it (it stopped while serving)", result)
            elif isinstance(result, BaseException):
                raise result
        self.free = sum(server.free for server in up)
        return tuple(server.endpoint for server in up)

    def _probe(self, endpoint: str) -> RemoteServer:
        return probe(endpoint, self.major, self.timeout)

    def mark_lost(self, endpoints: Iterable[str]) -> None:
        """A runner using these endpoints died: the next load may leave out those still down."""
        self.lost.update(endpoints)
