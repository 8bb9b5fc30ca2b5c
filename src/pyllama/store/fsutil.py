"""Durable file writes: temp file in the same directory, fsync, rename."""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path

TEMP_PREFIX = ".tmp-"


def fsync_dir(path: Path) -> None:
    """Persist a rename by syncing its directory (best effort off POSIX)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def make_dirs(path: Path) -> None:
    path.mkdir(mode=0o755, parents=True, exist_ok=True)


def temp_path(directory: Path, hint: str = "") -> Path:
    """A fresh temp file name inside ``directory`` (same filesystem as the target)."""
    return directory / f"{TEMP_PREFIX}{hint}{secrets.token_hex(8)}"


def atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` so readers see the old or the new file, never half."""
    make_dirs(path.parent)
    tmp = temp_path(path.parent)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def sha256_file(path: os.PathLike[str] | str) -> str:
    """``sha256:<hex>`` of a file's contents, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()
