"""Ask an RPC server, in Python, whether it is there and what it has.

ggml-rpc aborts the whole process when a server it connects to does not
answer, so nothing native touches an endpoint before this check passed: a
TCP connection, the protocol's HELLO (the version must match this build's
major version), the device count and each device's free/total memory, all
under one timeout. The messages are ggml-rpc's: a command byte, a
little-endian u64 payload size and the payload; answers are a u64 size and
the payload.
"""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass

_CMD_GET_DEVICE_MEMORY = 11
_CMD_HELLO = 14
_CMD_DEVICE_COUNT = 15
_CONN_CAPS = 24  # bytes of transport capabilities in HELLO (zeros: plain TCP)
_U64 = struct.Struct("<Q")

DEFAULT_TIMEOUT = 5.0


class RpcUnreachableError(RuntimeError):
    """The RPC server at ``endpoint`` cannot be used; the message names it and why."""

    def __init__(self, endpoint: str, reason: str) -> None:
        super().__init__(f"RPC server {endpoint} is not reachable: {reason}")
        self.endpoint = endpoint
        self.reason = reason


@dataclass(frozen=True)
class RemoteDevice:
    index: int
    free: int
    total: int


@dataclass(frozen=True)
class RemoteServer:
    """What an RPC server reported."""

    endpoint: str
    version: tuple[int, int, int]
    devices: tuple[RemoteDevice, ...]

    @property
    def free(self) -> int:
        return sum(d.free for d in self.devices)


def split_endpoint(endpoint: str) -> tuple[str, int]:
    """``host:port``; ValueError names what is wrong. ggml-rpc splits at
    the first colon, so IPv6 literals cannot be used (a host name can)."""
    host, sep, port = endpoint.strip().partition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"RPC server must be host:port (IPv4 or a host name) with a port in 1..65535, "
                         f"not {endpoint!r}")
    return host, int(port)


def parse_servers(text: str) -> tuple[str, ...]:
    """``PYLLAMA_RPC_SERVERS`` / ``--rpc``: comma-separated host:port, each once."""
    servers: list[str] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        split_endpoint(item)
        if item in servers:
            raise ValueError(f"RPC server {item} is listed twice")
        servers.append(item)
    return tuple(servers)


def _call(sock: socket.socket, command: int, payload: bytes, answer_size: int) -> bytes:
    sock.sendall(bytes((command,)) + _U64.pack(len(payload)) + payload)
    size = _U64.unpack(_recv(sock, _U64.size))[0]
    if size != answer_size:
        raise OSError(f"unexpected answer of {size} bytes to command {command} (expected {answer_size})")
    return _recv(sock, size)


def _recv(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise OSError("the server closed the connection")
        data += chunk
    return bytes(data)


def probe(endpoint: str, major: int, timeout: float = DEFAULT_TIMEOUT) -> RemoteServer:
    """Connect, say HELLO, list the devices and their memory; raises
    RpcUnreachableError (refused, timed out, wrong protocol version).
    ``major`` is the protocol major version this build speaks."""
    host, port = split_endpoint(endpoint)
    deadline = time.monotonic() + timeout
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            hello = _call(sock, _CMD_HELLO, bytes(_CONN_CAPS), 4 + _CONN_CAPS)
            version = (hello[0], hello[1], hello[2])
            if version[0] != major:
                raise RpcUnreachableError(endpoint, f"it speaks RPC protocol {'.'.join(map(str, version))}, "
                                          f"this build speaks {major}.x")
            count = struct.unpack("<I", _call(sock, _CMD_DEVICE_COUNT, b"", 4))[0]
            devices = []
            for index in range(count):
                free, total = struct.unpack("<QQ", _call(sock, _CMD_GET_DEVICE_MEMORY,
                                                         struct.pack("<I", index), 16))
                devices.append(RemoteDevice(index, free, total))
    except socket.timeout:
        raise RpcUnreachableError(endpoint, f"no answer within {timeout:g}s (down, firewalled, "
                                  "or serving another client)") from None
    except OSError as exc:
        raise RpcUnreachableError(endpoint, exc.strerror or str(exc)) from None
    if not devices:
        raise RpcUnreachableError(endpoint, "it serves no devices")
    return RemoteServer(endpoint, version, tuple(devices))


def not_listening(endpoints: list[str], timeout: float = 1.0) -> list[str]:
    """Those of ``endpoints`` that refuse or ignore a TCP connection now
    (to say which server a runner lost)."""
    down = []
    for endpoint in endpoints:
        try:
            with socket.create_connection(split_endpoint(endpoint), timeout=timeout):
                pass
        except OSError:
            down.append(endpoint)
    return down
