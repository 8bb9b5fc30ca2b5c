"""``pyllama rpc-server``: serve this machine's devices to pyllama or
llama.cpp instances elsewhere, as llama.cpp's ``rpc-server`` does.

The protocol has no authentication and no encryption: anyone who can
reach the port can run computations and read what is stored there. It
binds 127.0.0.1 unless told otherwise and says so loudly when told.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
from pathlib import Path

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 50052

WARNING = """\
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!
WARNING: the RPC server listens on {host}:{port}, not only on this machine.
  The RPC protocol has NO authentication and NO encryption: anyone who can
  reach this port can use this machine's devices and read or overwrite the
  tensors stored there. Allow only your own inference hosts to reach it
  (a firewall rule or a private network). See docs/rpc.md.
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!
"""


def default_threads() -> int:
    """Half the cores, at least one: llama.cpp's rpc-server default."""
    return max(1, (os.cpu_count() or 2) // 2)


def default_cache_dir() -> Path:
    """Where ``--cache`` keeps tensors: ``$LLAMA_CACHE/rpc``, else the XDG cache (llama.cpp's place)."""
    base = os.environ.get("LLAMA_CACHE")
    if base:
        return Path(base) / "rpc"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "llama.cpp" / "rpc"


def is_loopback(host: str) -> bool:
    return host == "localhost" or host.startswith("127.")


def check_bind(host: str, port: int) -> None:
    """Fail early, in words, when the address cannot be bound (ggml-rpc would only print a line)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise OSError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def run(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, *, threads: int | None = None,
        devices: list[str] | None = None, cache_dir: str | os.PathLike[str] | None = None) -> int:
    """Serve until killed. Returns an exit status when it cannot start or stops."""
    from pyllama import _native

    if not 0 < port < 65536:
        print(f"Error: port must be in 1..65535, not {port}", file=sys.stderr)
        return 1
    if threads is not None and threads < 1:
        print(f"Error: invalid number of threads: {threads}", file=sys.stderr)
        return 1
    if not _native.supports_rpc():
        print("Error: this build of pyllama has no RPC back-end (GGML_RPC=OFF)", file=sys.stderr)
        return 1
    if ":" in host:
        print("Error: ggml-rpc cannot listen on an IPv6 address; use an IPv4 address or host name",
              file=sys.stderr)
        return 1
    if not is_loopback(host):
        sys.stderr.write(WARNING.format(host=host, port=port))
        sys.stderr.flush()
    try:
        check_bind(host, port)
    except OSError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    endpoint = f"{host}:{port}"
    # The native loop never returns to Python while it serves: let Ctrl+C and
    # SIGTERM end the process the ordinary way instead of waiting for it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        _native.rpc_start_server(endpoint, devices or None, threads or default_threads(),
                                 os.fspath(cache_dir) if cache_dir is not None else None)
    except (ValueError, _native.LlamaError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    return 1
