"""The Python side of the RPC protocol (probing) and the scheduler's server
list, against a fake server that answers as ggml-rpc does."""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import threading
from collections.abc import Iterator

import pytest

from pyllama.rpc import RpcPool, RpcUnreachableError, parse_servers, parse_tensor_split, probe
from serverutil import free_port


class FakeRpcServer:
    """Answers HELLO, DEVICE_COUNT and GET_DEVICE_MEMORY like ggml-rpc's server."""

    def __init__(self, version: tuple[int, int, int] = (7, 0, 0), devices: int = 1, silent: bool = False) -> None:
        self.version = version
        self.devices = devices
        self.silent = silent
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.endpoint = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                try:
                    self._client(conn)
                except (OSError, struct.error):
                    pass

    def _client(self, conn: socket.socket) -> None:
        if self.silent:
            conn.recv(64)
            threading.Event().wait(5)  # like a server busy with another client
            return
        while header := conn.recv(9, socket.MSG_WAITALL):
            command, size = header[0], struct.unpack("<Q", header[1:])[0]
            payload = conn.recv(size, socket.MSG_WAITALL) if size else b""
            if command == 14:
                answer = bytes(self.version) + b"\0" + bytes(24)
            elif command == 15:
                answer = struct.pack("<I", self.devices)
            elif command == 11:
                index = struct.unpack("<I", payload)[0]
                answer = struct.pack("<QQ", (index + 1) << 30, 8 << 30)
            else:
                return
            conn.sendall(struct.pack("<Q", len(answer)) + answer)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def fake() -> Iterator[FakeRpcServer]:
    server = FakeRpcServer(devices=2)
    yield server
    server.close()


def test_probe_reads_version_devices_and_memory(fake: FakeRpcServer) -> None:
    info = probe(fake.endpoint, 7)
    assert info.version == (7, 0, 0)
    assert [(d.index, d.free, d.total) for d in info.devices] == [(0, 1 << 30, 8 << 30), (1, 2 << 30, 8 << 30)]
    assert info.free == 3 << 30


def test_probe_names_a_server_that_is_down() -> None:
    endpoint = f"127.0.0.1:{free_port()}"
    with pytest.raises(RpcUnreachableError, match=f"RPC server {endpoint} is not reachable: .*refused"):
        probe(endpoint, 7, timeout=2)


def test_probe_refuses_another_protocol_version() -> None:
    server = FakeRpcServer(version=(3, 0, 0))
    try:
        with pytest.raises(RpcUnreachableError, match=r"speaks RPC protocol 3\.0\.0, this build speaks 7\.x"):
            probe(server.endpoint, 7)
    finally:
        server.close()


def test_probe_times_out_on_a_server_that_does_not_answer() -> None:
    server = FakeRpcServer(silent=True)
    try:
        with pytest.raises(RpcUnreachableError, match="no answer within 0.5s"):
            probe(server.endpoint, 7, timeout=0.5)
    finally:
        server.close()


@pytest.mark.parametrize("text", ["localhost", "host:", ":50052", "h:0", "h:70000", "[::1]:50052", "a:1,a:1"])
def test_bad_server_lists_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="RPC server"):
        parse_servers(text)


def test_server_list_and_tensor_split_parse() -> None:
    assert parse_servers(" 10.0.0.7:50052, gpu-box:50053 ,") == ("10.0.0.7:50052", "gpu-box:50053")
    assert parse_tensor_split("3, 1") == (3.0, 1.0)
    assert parse_tensor_split("") == ()
    for bad in ("a,b", "0,0", "-1,2", "inf"):
        with pytest.raises(ValueError, match="PYLLAMA_TENSOR_SPLIT"):
            parse_tensor_split(bad)


def test_pool_fails_on_a_down_server_but_skips_one_a_runner_lost(fake: FakeRpcServer,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    down = f"127.0.0.1:{free_port()}"
    pool = RpcPool([fake.endpoint, down], timeout=2, major=7)
    with pytest.raises(RpcUnreachableError, match=down):
        asyncio.run(pool.usable())
    pool.mark_lost([fake.endpoint, down])
    with caplog.at_level(logging.WARNING, logger="pyllama.rpc"):
        assert asyncio.run(pool.usable()) == (fake.endpoint,)
    assert f"RPC server {down} is not reachable" in caplog.text and "loading without it" in caplog.text
    assert pool.free == 3 << 30
    assert pool.lost == {down}  # the one that answers again is no longer lost


def test_the_schedulers_memory_fit_counts_the_rpc_servers_free_memory(fake: FakeRpcServer) -> None:
    from pyllama.config import Config
    from pyllama.runner import MemoryEstimate
    from pyllama.scheduler import Scheduler

    scheduler = Scheduler(Config(rpc_servers=fake.endpoint), memory_available=lambda: 1 << 30,
                          vram_available=lambda: 0)
    big = MemoryEstimate(weights=2 << 30, kv_cache=1 << 28, compute=1 << 26)  # more than this machine's 1 GiB
    assert scheduler._fits(big) == (False, False)  # nothing known of the remote devices yet
    assert asyncio.run(scheduler.rpc.usable()) == (fake.endpoint,)  # what the first load does before fitting
    assert scheduler._fits(big) == (True, False)  # 1 GiB here + 3 GiB free on the server
    assert scheduler._fits(MemoryEstimate(weights=5 << 30, kv_cache=0, compute=0)) == (False, False)
