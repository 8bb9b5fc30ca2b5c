"""``pyllama rpc-server`` as a user starts it: it serves (a probe sees this
machine's CPU), warns loudly when bound beyond loopback, and refuses what it
cannot do with a clear error and exit status 1."""

from __future__ import annotations

import socket
import subprocess
import sys

from pyllama.rpc.wire import probe
from rpcutil import RPC_MAJOR, clean_env, rpc_server, wait_rpc
from serverutil import _stop, free_port


def rpc_server_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pyllama", "rpc-server", *args], env=clean_env(),
                          capture_output=True, text=True, timeout=timeout)


def test_it_serves_this_machines_cpu_on_loopback() -> None:
    with rpc_server() as (endpoint, _):
        info = probe(endpoint, RPC_MAJOR)
        assert info.version[0] == RPC_MAJOR
        assert len(info.devices) == 1 and 0 < info.devices[0].free <= info.devices[0].total


def test_binding_beyond_loopback_warns_that_there_is_no_authentication() -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "pyllama", "rpc-server", "-H", "0.0.0.0", "-p", str(port),
                             "-t", "1"], env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_rpc(f"127.0.0.1:{port}", proc)
    finally:
        _stop(proc)
    out = proc.stdout.read().decode() if proc.stdout else ""
    assert "WARNING: the RPC server listens on 0.0.0.0:" in out
    assert "NO authentication" in out


def test_loopback_does_not_warn_and_cache_dir_is_created(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cache = tmp_path / "rpc-cache"
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "pyllama", "rpc-server", "-p", str(port), "-t", "1",
                             "--cache-dir", str(cache)], env=clean_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        wait_rpc(f"127.0.0.1:{port}", proc)
    finally:
        _stop(proc)
    out = proc.stdout.read().decode() if proc.stdout else ""
    assert "WARNING" not in out
    assert f"local cache    : {cache}" in out and cache.is_dir()


def test_a_port_in_use_is_refused() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = rpc_server_cli("-p", str(port))
    assert result.returncode == 1
    assert f"Error: cannot listen on 127.0.0.1:{port}" in result.stderr


def test_an_unknown_device_is_refused_with_the_known_ones() -> None:
    result = rpc_server_cli("-p", str(free_port()), "-d", "CUDA7")
    assert result.returncode == 1
    assert "Error: unknown device 'CUDA7' (this machine has: CPU" in result.stderr


def test_bad_values_are_refused() -> None:
    assert "Error: invalid number of threads: 0" in rpc_server_cli("-t", "0").stderr
    assert "Error: port must be in 1..65535" in rpc_server_cli("-p", "70000").stderr
    assert "IPv6" in rpc_server_cli("-H", "::1").stderr
    usage = rpc_server_cli("--help").stdout
    assert "pyllama rpc-server [flags]" in usage and "-p, --port int" in usage and "--cache-dir string" in usage


def test_serve_refuses_bad_rpc_settings_before_starting() -> None:
    for flags, env, message in ((["--rpc", "gpu-box"], {}, "RPC server must be host:port"),
                                ([], {"PYLLAMA_TENSOR_SPLIT": "1,x"}, "PYLLAMA_TENSOR_SPLIT must be")):
        result = subprocess.run([sys.executable, "-m", "pyllama", "serve", *flags],
                                env=clean_env(PYLLAMA_HOST=f"127.0.0.1:{free_port()}", **env),
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 1
        assert result.stderr.startswith("Error: ") and message in result.stderr
