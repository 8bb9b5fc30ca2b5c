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
    totals: dict[str, int] = {}
    descriptions: dict[str, str] = {}
    for part in ctx.memory_breakdown():
        # Host buffer types without a device (CPU_Mapped: the memory-mapped weights) count as the CPU's.
        name = part["device"] or ("CPU" if part["buffer_type"].startswith("CPU") else part["buffer_type"])
        totals[name] = totals.get(name, 0) + part["model"] + part["context"] + part["compute"]
        descriptions[name] = descriptions.get(name) or part["description"]
    return [DeviceUse(name, descriptions[name], size) for name, size in totals.items() if size]
