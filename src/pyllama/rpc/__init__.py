"""Models across machines with llama.cpp's RPC back-end: probing servers
(``wire``), the scheduler's server list (``pool``) and the ``pyllama
rpc-server`` command (``server``). See docs/rpc.md."""

from pyllama.rpc.pool import RpcPool, parse_tensor_split
from pyllama.rpc.wire import RemoteServer, RpcUnreachableError, parse_servers, probe, split_endpoint

__all__ = ["RemoteServer", "RpcPool", "RpcUnreachableError", "parse_servers", "parse_tensor_split", "probe",
           "split_endpoint"]
