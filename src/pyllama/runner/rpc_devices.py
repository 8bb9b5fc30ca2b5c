"""A runner's remote devices: added before the model loads, accounted after.

Each endpoint is probed in Python first: ggml-rpc aborts the process when a
server does not answer, and a probe turns that into a load error naming the
server. Should a server die later, ggml-rpc aborts this runner mid-decode;
``GGML_NO_BACKTRACE`` keeps its last stderr line the reason, which the
server's side of the runner puts in the error every open stream receives.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from pyllama import _native
from pyllama.rpc.wire import RpcUnreachableError, probe
from pyllama.runner.protocol import DeviceUse


def add_rpc_servers(endpoints: Sequence[str]) -> list[str]:
    """Probe and register each server's devices; returns their names (RPC0, ...).
    Raises RuntimeError naming the first server that does not answer."""
    os.environ.setdefault("GGML_NO_BACKTRACE", "1")
    major = _native.rpc_protocol_version()[0]
    names: list[str] = []
    for endpoint in endpoints:
        try:
            probe(endpoint, major)
        except RpcUnreachableError as exc:
            raise RuntimeError(str(exc)) from None
        names += _native.rpc_add_server(endpoint)
    return names


def device_use(ctx: Any) -> list[DeviceUse]:
    """Bytes held per device (weights + KV cache + compute), from llama.cpp's breakdown."""
    totals: dict[tuple[str, str], int] = {}
    for part in ctx.memory_breakdown():
        key = (part["device"] or part["buffer_type"], part["description"])
        totals[key] = totals.get(key, 0) + part["model"] + part["context"] + part["compute"]
    return [DeviceUse(name, description, size) for (name, description), size in totals.items() if size]
