"""The store lock: serialises manifest writes against deletes and pruning.

A process-wide re-entrant lock keeps threads of one server apart; an
``fcntl`` lock on a file in the store root keeps separate processes (two
servers, or a server and a CLI) apart.  Critical sections are short: they
check blobs, write a manifest, or delete and prune, never transfer data.
The same object counts the blobs that unfinished creates and pulls of this
process hold (pins), which pruning must leave alone.
"""

from __future__ import annotations

import os
import struct
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
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
        # Blobs an unfinished create or pull in this process will name in its
        # manifest; pruning skips them (see layout.BlobHold).
        self.pins: Counter[str] = Counter()

    def pin(self, digests: Iterable[str]) -> None:
        with self.thread_lock:
            self.pins.update(digests)

    def unpin(self, digests: Iterable[str]) -> None:
        with self.thread_lock:
            self.pins.subtract(digests)
            for digest in [d for d, n in self.pins.items() if n <= 0]:
                del self.pins[digest]

    def pinned(self) -> set[str]:
        with self.thread_lock:
            return set(self.pins)

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


PULL_LOCK_FILE = ".pyllama.pull.lock"
_range_fds: dict[str, int] = {}
# struct flock on Linux: l_type, l_whence, l_start, l_len, l_pid (+ padding).
_FLOCK_FORMAT = "hhqqi4x"


def _ofd_lock(fd: int, lock_type: int, offset: int) -> None:
    command = fcntl.F_OFD_SETLK if lock_type == fcntl.F_UNLCK else fcntl.F_OFD_SETLKW
    fcntl.fcntl(fd, command, struct.pack(_FLOCK_FORMAT, lock_type, os.SEEK_SET, offset, 1, 0))


@contextmanager
def blob_download_lock(root: Path, digest: str) -> Iterator[None]:
    """Keep two processes from downloading the same blob into the same ``-partial`` file.

    An open-file-description byte-range lock on ``.pyllama.pull.lock`` at an
    offset taken from the digest: no per-blob lock files to clean up, and,
    unlike classic POSIX record locks, no false "deadlock" errors when two
    multi-threaded processes each hold one blob and wait for another.  Threads
    of one process share the description, so callers pair this with an
    in-process lock.  Without OFD locks (not Linux) only the in-process lock
    applies.
    """
    if fcntl is None or not hasattr(fcntl, "F_OFD_SETLKW"):
        yield
        return
    key = os.path.realpath(root)
    with _registry_guard:
        fd = _range_fds.get(key)
        if fd is None:
            root.mkdir(parents=True, exist_ok=True)
            fd = _range_fds[key] = os.open(Path(key) / PULL_LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    offset = int(digest.split(":", 1)[-1][:8], 16)
    _ofd_lock(fd, fcntl.F_WRLCK, offset)
    try:
        yield
    finally:
        _ofd_lock(fd, fcntl.F_UNLCK, offset)
