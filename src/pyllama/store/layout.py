"""The on-disk store: ``manifests/<host>/<namespace>/<model>/<tag>`` and ``blobs/sha256-<hex>``.

Same layout as Ollama's, so ``PYLLAMA_MODELS=~/.ollama/models`` serves what
Ollama already downloaded.  All manifest writes and deletes happen under
the store lock, and a manifest is only written once every blob it names is
present, so no reader ever sees a manifest pointing at a missing blob.
A create or pull holds the blobs its manifest will name (``Store.holding``)
from the moment it checks or writes them, so a concurrent delete cannot
prune them before that manifest lands.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pyllama.store.errors import InvalidRequest, NotFound
from pyllama.store.fsutil import TEMP_PREFIX, atomic_write, fsync_dir, make_dirs, temp_path
from pyllama.store.lock import store_lock
from pyllama.store.manifest import DIGEST_RE, Manifest, decode_manifest, normalize_digest
from pyllama.store.names import ModelName, parse_name

log = logging.getLogger(__name__)

_BLOB_FILE_RE = re.compile(r"^sha256-[0-9a-f]{64}$")
_PRUNE_AGE_S = 3600.0


@dataclass(frozen=True)
class StoredModel:
    """A manifest found in the store, with what listing needs."""

    name: ModelName
    path: Path
    raw: bytes
    manifest: Manifest
    mtime: float

    @property
    def manifest_digest(self) -> str:
        """sha256 hex of the manifest file: the ``digest`` of /api/tags."""
        return hashlib.sha256(self.raw).hexdigest()


class BlobWriter:
    """Stream bytes into a temp file in ``blobs/`` while hashing them.

    ``commit`` verifies the digest and renames the file into place; on any
    failure the temp file is removed, so a bad upload leaves nothing behind.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        make_dirs(store.blobs_dir)
        self.path = temp_path(store.blobs_dir, "upload-")
        self._file = open(self.path, "wb")  # noqa: SIM115 - closed in commit/abort
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, chunk: bytes) -> None:
        self._file.write(chunk)
        self._hash.update(chunk)
        self.size += len(chunk)

    @property
    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()

    def commit(self, expected: str | None = None) -> str:
        """Verify against ``expected`` (if given) and link the blob in; return its digest."""
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            got = self.digest
            if expected is not None and normalize_digest(expected) != got:
                raise InvalidRequest(f'digest mismatch, expected "{expected}", got "{got}"')
            self.store.link_blob(self.path, got)
            return got
        finally:
            self.abort()

    def abort(self) -> None:
        if not self._file.closed:
            self._file.close()
        self.path.unlink(missing_ok=True)


class BlobHold:
    """Blobs an unfinished create or pull will name in its manifest.

    A delete prunes every blob no manifest references.  Between a create
    checking a blob (the user's upload, a base model's weights) and writing
    its manifest, nothing references that blob yet, so a delete of the last
    other model using it would remove it and the create would fail with a
    lost upload.  Held blobs are skipped by pruning until the hold ends.
    The pins live in this process (``store_lock``); another process pruning
    the same store is only kept from leaving a broken manifest, by the
    check ``write_manifest`` makes under the store lock.
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self._held: list[str] = []
        self._guard = threading.Lock()

    def _pin(self, digest: str) -> None:
        with self._guard:
            self._held.append(digest)
        self._store._lock.pin([digest])

    def require(self, digest: str) -> Path:
        """Hold a blob that must already exist; NotFound if it does not."""
        path = self._store.blob_path(digest)
        with self._store.locked():
            if not path.is_file():
                raise NotFound(f'blob "{normalize_digest(digest)}" not found')
            self._pin(normalize_digest(digest))
        return path

    def add(self, digest: str) -> None:
        """Hold a blob before writing or linking it in."""
        self._store.blob_path(digest)  # validates the digest
        self._pin(normalize_digest(digest))

    def write_blob(self, data: bytes) -> tuple[str, bool]:
        """``Store.write_blob`` with the result held from before it exists."""
        self.add("sha256:" + hashlib.sha256(data).hexdigest())
        return self._store.write_blob(data)

    def release(self) -> None:
        with self._guard:
            held, self._held = self._held, []
        self._store._lock.unpin(held)


class Store:
    """A model store rooted at one directory."""

    def __init__(self, root: Path | str, noprune: bool = False) -> None:
        self.root = Path(root).expanduser()
        self.noprune = noprune
        self.manifests_dir = self.root / "manifests"
        self.blobs_dir = self.root / "blobs"
        self._lock = store_lock(self.root)

    # -- locking -------------------------------------------------------

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the store lock (re-entrant within this process)."""
        with self._lock.hold():
            yield

    @contextmanager
    def holding(self) -> Iterator[BlobHold]:
        """Keep the blobs added to the yielded hold from pruning until the block ends."""
        hold = BlobHold(self)
        try:
            yield hold
        finally:
            hold.release()

    # -- blobs ---------------------------------------------------------

    def blob_path(self, digest: str) -> Path:
        """Path of a blob; raise InvalidRequest for anything but a sha256 digest."""
        try:
            normal = normalize_digest(digest)
        except ValueError:
            raise InvalidRequest("invalid digest format") from None
        return self.blobs_dir / normal.replace(":", "-")

    def has_blob(self, digest: str) -> bool:
        return self.blob_path(digest).is_file()

    def blob_writer(self) -> BlobWriter:
        return BlobWriter(self)

    def link_blob(self, tmp: Path, digest: str) -> Path:
        """Move a verified temp file into place, or reuse an existing copy."""
        final = self.blob_path(digest)
        if final.exists():
            os.utime(final)
            tmp.unlink(missing_ok=True)
            return final
        os.chmod(tmp, 0o644)
        os.replace(tmp, final)
        fsync_dir(final.parent)
        return final

    def write_blob(self, data: bytes) -> tuple[str, bool]:
        """Store ``data``; return (digest, created) where created is False when reused."""
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        final = self.blob_path(digest)
        if final.exists():
            os.utime(final)
            return digest, False
        make_dirs(self.blobs_dir)
        atomic_write(final, data)
        return digest, True

    def read_blob(self, digest: str) -> bytes:
        return self.blob_path(digest).read_bytes()

    # -- manifests -----------------------------------------------------

    def manifest_path(self, name: ModelName) -> Path:
        path = self.manifests_dir.joinpath(*name.parts)
        # Names are validated, but check containment anyway: this is the
        # one place a request string becomes a filesystem path.
        resolved = os.path.normpath(path)
        if not resolved.startswith(os.path.normpath(self.manifests_dir) + os.sep):
            raise InvalidRequest("invalid model name")
        return path

    def resolve(self, name: ModelName) -> ModelName:
        """Re-case ``name`` to match an existing manifest's parts, part by part."""
        parts: list[str] = []
        directory = self.manifests_dir
        for part in name.parts:
            match = part
            if directory.is_dir():
                if not (directory / part).exists():
                    lowered = part.lower()
                    for entry in sorted(os.listdir(directory)):
                        if entry.lower() == lowered:
                            match = entry
                            break
            parts.append(match)
            directory = directory / match
        return name.with_parts((parts[0], parts[1], parts[2], parts[3]))

    def get(self, name: ModelName) -> StoredModel:
        """Load a model's manifest; raise NotFound with Ollama's wording."""
        resolved = self.resolve(name)
        path = self.manifest_path(resolved)
        try:
            raw = path.read_bytes()
            mtime = path.stat().st_mtime
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise NotFound(f"model '{name.display_shortest}' not found") from None
        try:
            manifest = decode_manifest(raw)
        except ValueError as exc:
            raise NotFound(f"model '{name.display_shortest}' not found: {exc}") from None
        return StoredModel(resolved, path, raw, manifest, mtime)

    def exists(self, name: ModelName) -> bool:
        return self.manifest_path(self.resolve(name)).is_file()

    def write_manifest(self, name: ModelName, raw: bytes, manifest: Manifest) -> set[str]:
        """Install a manifest once all its blobs exist; return digests it orphaned.

        Must be called with the lock held by the caller or not at all (it
        takes the lock itself; the lock is re-entrant).
        """
        with self.locked():
            for digest in sorted(manifest.digests()):
                if not self.has_blob(digest):
                    raise NotFound(f'blob "{digest}" not found')
            resolved = self.resolve(name)
            path = self.manifest_path(resolved)
            old: set[str] = set()
            if path.is_file():
                try:
                    old = decode_manifest(path.read_bytes()).digests()
                except ValueError:
                    old = set()
            atomic_write(path, raw)
            return old - manifest.digests()

    def delete(self, name: ModelName) -> None:
        """Remove a manifest, empty directories, then blobs nobody else uses."""
        with self.locked():
            model = self.get(name)
            model.path.unlink()
            self._remove_empty_dirs(model.path.parent)
            self.prune_digests(model.manifest.digests())

    def _remove_empty_dirs(self, directory: Path) -> None:
        root = self.manifests_dir.resolve()
        current = directory
        while current.resolve() != root and current.resolve().is_relative_to(root):
            try:
                current.rmdir()
            except OSError:
                return
            current = current.parent

    def iter_models(self, corrupt: list[Path] | None = None) -> Iterator[StoredModel]:
        """Every readable manifest at depth host/namespace/model/tag.

        Unreadable ones are skipped and, if ``corrupt`` is given, appended to it.
        """
        if not self.manifests_dir.is_dir():
            return
        for host in _subdirs(self.manifests_dir):
            for namespace in _subdirs(host):
                for model in _subdirs(namespace):
                    for tag_path in sorted(model.iterdir()):
                        if not tag_path.is_file() or tag_path.name.startswith("."):
                            continue
                        try:
                            name = parse_name(f"{host.name}/{namespace.name}/{model.name}:{tag_path.name}")
                        except ValueError:
                            log.warning("skipping manifest with invalid name: %s", tag_path)
                            continue
                        try:
                            raw = tag_path.read_bytes()
                            manifest = decode_manifest(raw)
                            mtime = tag_path.stat().st_mtime
                        except (OSError, ValueError) as exc:
                            log.warning("skipping unreadable manifest %s: %s", tag_path, exc)
                            if corrupt is not None:
                                corrupt.append(tag_path)
                            continue
                        yield StoredModel(name, tag_path, raw, manifest, mtime)

    def referenced_digests(self) -> set[str]:
        """Digests of every blob some manifest uses (config included)."""
        used: set[str] = set()
        for model in self.iter_models():
            used |= model.manifest.digests()
        return used

    # -- pruning -------------------------------------------------------

    def prune_digests(self, candidates: Iterable[str]) -> list[str]:
        """Delete those of ``candidates`` no manifest references; return them.

        Honours NOPRUNE.  Runs under the lock so a concurrent create cannot
        install a manifest that names a blob between our check and unlink;
        blobs an unfinished create or pull holds count as referenced.
        """
        if self.noprune:
            return []
        removed: list[str] = []
        with self.locked():
            used = self.referenced_digests() | self._lock.pinned()
            for digest in sorted(set(candidates) - used):
                path = self.blob_path(digest)
                try:
                    path.unlink()
                    removed.append(digest)
                except FileNotFoundError:
                    pass
        return removed

    def prune_on_start(self, now: float | None = None) -> None:
        """Startup clean-up: fix ``sha256:`` names, drop stale temp files,
        old unreferenced blobs and empty manifest directories.

        Resumable ``-partial`` download state is kept (see docs/store.md).
        """
        if not self.blobs_dir.is_dir():
            return
        now = time.time() if now is None else now
        with self.locked():
            for entry in list(self.blobs_dir.iterdir()):
                if entry.name.startswith("sha256:") and DIGEST_RE.match(entry.name):
                    target = self.blobs_dir / entry.name.replace(":", "-")
                    if not target.exists():
                        os.replace(entry, target)
            if self.noprune:
                return
            # A corrupt manifest means we cannot know what is referenced.
            used = self._lock.pinned()
            corrupt: list[Path] = []
            for model in self.iter_models(corrupt):
                used |= model.manifest.digests()
            if corrupt:
                log.warning("not pruning: %d corrupt manifest(s)", len(corrupt))
                return
            for entry in list(self.blobs_dir.iterdir()):
                try:
                    age = now - entry.stat().st_mtime
                except FileNotFoundError:
                    continue
                if entry.name.startswith(TEMP_PREFIX):
                    if age > _PRUNE_AGE_S:
                        entry.unlink(missing_ok=True)
                    continue
                if not _BLOB_FILE_RE.match(entry.name):
                    continue
                digest = entry.name.replace("-", ":", 1)
                if digest not in used and age > _PRUNE_AGE_S:
                    entry.unlink(missing_ok=True)
            if self.manifests_dir.is_dir():
                for dirpath, _dirs, _files in sorted(os.walk(self.manifests_dir), reverse=True):
                    path = Path(dirpath)
                    if path != self.manifests_dir:
                        try:
                            path.rmdir()
                        except OSError:
                            pass


def _subdirs(path: Path) -> list[Path]:
    try:
        return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return []
