"""The store lock: serialises manifest writes against deletes and pruning.

A process-wide re-entrant lock keeps threads of one server apart; an
``fcntl`` lock on a file in the store root keeps separate processes (two
servers, or a server and a CLI) apart.  Critical sections are short: they
check blobs, write a manifest, or delete and prune, never transfer data.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

LOCK_FILE = ".pyllama.lock"

_registry_guard = threading.Lock()
_locks: dict[str, _StoreLock] = {}


class _StoreLock:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.thread_lock = threading.RLock()
        self.depth = 0
        self.fd: int | None = None

    @contextmanager
    def hold(self) -> Iterator[None]:
        with self.thread_lock:
            if self.depth == 0:
                self.root.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.root / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
                if fcntl is not None:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                self.fd = fd
            self.depth += 1
            try:
                yield
            finally:
                self.depth -= 1
                if self.depth == 0 and self.fd is not None:
                    if fcntl is not None:
                        fcntl.flock(self.fd, fcntl.LOCK_UN)
                    os.close(self.fd)
                    self.fd = None


def store_lock(root: Path) -> _StoreLock:
    """The one lock object for the store at ``root`` in this process."""
    key = os.path.realpath(root)
    with _registry_guard:
        lock = _locks.get(key)
        if lock is None:
            lock = _locks[key] = _StoreLock(Path(key))
        return lock
