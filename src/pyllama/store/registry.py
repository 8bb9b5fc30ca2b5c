"""Registry client: pull and push over the OCI distribution protocol, as Ollama does.

Pulls download each blob in ranged parts into ``blobs/sha256-<hex>-partial``
with per-part JSON state (``-partial-N``), so an interrupted pull resumes
where it stopped.  A blob is hashed before it is renamed into place, and the
manifest is written last, under the store lock: a failed pull never leaves a
model that points at missing or unverified data.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit, urlunsplit

import httpx

from pyllama.store.errors import RegistryError, StoreError
from pyllama.store.fsutil import TEMP_PREFIX, sha256_file
from pyllama.store.layout import BlobHold, Store
from pyllama.store.lock import blob_download_lock
from pyllama.store.manifest import MANIFEST_MEDIA_TYPE, Layer, decode_manifest
from pyllama.store.names import ModelName, parse_name
from pyllama.store.registry_http import (
    CHUNK,
    MAX_LAYERS_IN_FLIGHT,
    MAX_PART_SIZE,
    MAX_PARTS_IN_FLIGHT,
    PROGRESS_INTERVAL_S,
    UPLOAD_MAX_PART,
    UPLOAD_MIN_PART,
    Canceled,
    RegistryHTTP,
    short_hex,
    status_error,
)

log = logging.getLogger(__name__)

Emit = Callable[[dict[str, Any]], None]

_blob_locks_guard = threading.Lock()
_blob_locks: dict[str, threading.Lock] = {}


@contextmanager
def _blob_lock(digest: str) -> Iterator[None]:
    """One download per blob per process: concurrent pulls of it share the result."""
    with _blob_locks_guard:
        lock = _blob_locks.setdefault(digest, threading.Lock())
    with lock:
        yield


@dataclass
class _Part:
    n: int
    offset: int
    size: int
    completed: int = 0

    def to_json(self) -> bytes:
        return json.dumps({"N": self.n, "Offset": self.offset, "Size": self.size, "Completed": self.completed}).encode()


class RegistryClient(RegistryHTTP):
    """Pulls and pushes one model name from and to its registry."""

    # -- pull ----------------------------------------------------------

    def fetch_manifest(self) -> bytes:
        try:
            response = self.request("GET", self._url(f"manifests/{self.name.tag}"), headers={"Accept": MANIFEST_MEDIA_TYPE})
        except RegistryError as exc:
            raise RegistryError(f"pull model manifest: {exc.message}", exc.status_code) from None
        if response.status_code >= 400:
            error = status_error(response)
            raise RegistryError(f"pull model manifest: {error.message}", error.status_code)
        return response.content

    def pull(self, emit: Emit) -> None:
        """Download the model; emits Ollama's pull status lines, ending in ``success``."""
        emit({"status": "pulling manifest"})
        raw = self.fetch_manifest()
        try:
            manifest = decode_manifest(raw)
        except ValueError as exc:
            raise RegistryError(f"pull model manifest: {exc}") from None
        if manifest.config is None:
            raise RegistryError("pull model manifest: unsupported manifest format (no config)")
        layers = [*manifest.layers, manifest.config]
        # Every layer is held from before its presence check until the
        # manifest is written, so a concurrent delete cannot prune it.
        with self.store.holding() as hold:
            # Layers download side by side (each in parts); the first failure stops the rest.
            with ThreadPoolExecutor(max_workers=min(MAX_LAYERS_IN_FLIGHT, len(layers))) as pool:
                futures = [pool.submit(self._pull_layer, layer, emit, hold) for layer in layers]
                errors: list[BaseException] = []
                for future in futures:
                    try:
                        future.result()
                    except BaseException as exc:  # noqa: BLE001 - re-raised below
                        errors.append(exc)
                        self._abort.set()
            if errors:
                # Report the failure itself, not the siblings it stopped.
                raise next((e for e in errors if not isinstance(e, Canceled)), errors[0])
            emit({"status": "verifying sha256 digest"})
            emit({"status": "writing manifest"})
            with self.store.locked():
                orphaned = self.store.write_manifest(self.name, raw, manifest)
                if orphaned and not self.store.noprune:
                    emit({"status": "removing unused layers"})
                    self.store.prune_digests(orphaned)
        emit({"status": "success"})

    def _pull_layer(self, layer: Layer, emit: Emit, hold: BlobHold) -> None:
        """Make one blob present and verified."""
        status = f"pulling {short_hex(layer.digest)}"
        hold.add(layer.digest)
        with _blob_lock(layer.digest), blob_download_lock(self.store.root, layer.digest):
            self._check()
            if self.store.has_blob(layer.digest):
                emit({"status": status, "digest": layer.digest, "total": layer.size, "completed": layer.size})
                return
            self._download(layer, emit, status)

    def _part_paths(self, layer: Layer) -> tuple[Path, Path]:
        final = self.store.blob_path(layer.digest)
        return final.with_name(final.name + "-partial"), final.parent

    def _load_parts(self, layer: Layer, data_path: Path) -> list[_Part]:
        part_size = min(max(layer.size // 16, self.min_part_size), MAX_PART_SIZE) or 1
        fresh = [
            _Part(n, offset, min(part_size, layer.size - offset))
            for n, offset in enumerate(range(0, max(layer.size, 1), part_size))
        ]
        if layer.size == 0:
            fresh = []
        if not data_path.exists() or data_path.stat().st_size != layer.size:
            return fresh
        loaded: list[_Part] = []
        for n in range(len(fresh)):
            state = data_path.with_name(f"{data_path.name}-{n}")
            try:
                raw = json.loads(state.read_bytes())
                part = _Part(int(raw["N"]), int(raw["Offset"]), int(raw["Size"]), int(raw["Completed"]))
            except (OSError, ValueError, KeyError, TypeError):
                return fresh
            if (part.n, part.offset, part.size) != (n, fresh[n].offset, fresh[n].size) or not 0 <= part.completed <= part.size:
                return fresh
            loaded.append(part)
        return loaded

    def _resolve_location(self, url: str) -> str:
        """Follow the one redirect to the data URL (a CDN for registry.ollama.ai)."""
        response = self.request("GET", url, headers={"Range": "bytes=0-0"}, stream=True)
        try:
            if response.status_code in (301, 302, 303, 307, 308):
                location = str(response.headers.get("Location", ""))
                if location:
                    return urljoin(url, location)
            if response.status_code >= 400:
                raise status_error(response)
            return url
        finally:
            response.close()

    def _download(self, layer: Layer, emit: Emit, status: str) -> None:
        data_path, blobs_dir = self._part_paths(layer)
        blobs_dir.mkdir(parents=True, exist_ok=True)
        parts = self._load_parts(layer, data_path)
        if not data_path.exists() or data_path.stat().st_size != layer.size:
            with open(data_path, "wb") as handle:
                handle.truncate(layer.size)
            for part in parts:
                self._save_part(data_path, part)
        done = sum(p.completed for p in parts)
        emit({"status": status, "digest": layer.digest, "total": layer.size, "completed": done})
        last_emit = [time.monotonic()]

        def report(force: bool = False) -> None:
            now = time.monotonic()
            with self._progress_lock:
                if not force and now - last_emit[0] < PROGRESS_INTERVAL_S:
                    return
                last_emit[0] = now
            emit({"status": status, "digest": layer.digest, "total": layer.size, "completed": sum(p.completed for p in parts)})

        pending = [p for p in parts if p.completed < p.size]
        if pending:
            location = self._resolve_location(self._url(f"blobs/{layer.digest}"))
            fd = os.open(data_path, os.O_RDWR)
            abort = threading.Event()
            try:
                with ThreadPoolExecutor(max_workers=min(MAX_PARTS_IN_FLIGHT, len(pending))) as pool:
                    futures = [pool.submit(self._download_part, fd, data_path, location, part, report, abort) for part in pending]
                    finished, _ = wait(futures, return_when=FIRST_EXCEPTION)
                    for future in finished:
                        error = future.exception()
                        if error is not None:
                            abort.set()
                            for other in futures:
                                other.cancel()
                            raise error
                    for future in futures:
                        future.result()
                os.fsync(fd)
            finally:
                os.close(fd)
        report(force=True)
        self._verify_and_link(layer, data_path, len(parts))

    def _save_part(self, data_path: Path, part: _Part) -> None:
        state = data_path.with_name(f"{data_path.name}-{part.n}")
        tmp = state.with_name(f"{TEMP_PREFIX}{state.name}")  # startup prune removes strays
        tmp.write_bytes(part.to_json())
        os.replace(tmp, state)

    def _download_part(
        self,
        fd: int,
        data_path: Path,
        location: str,
        part: _Part,
        report: Callable[[bool], None],
        abort: threading.Event,
    ) -> None:
        attempt = 0
        while part.completed < part.size:
            self._check()
            if abort.is_set():
                raise Canceled()
            start = part.offset + part.completed
            end = part.offset + part.size - 1
            try:
                response = self.request("GET", location, headers={"Range": f"bytes={start}-{end}"}, stream=True)
                try:
                    if response.status_code >= 400:
                        raise status_error(response)
                    if response.status_code != 206 and start != 0:
                        raise RegistryError(f"registry ignored the Range request ({response.status_code})")
                    position = start
                    unsaved = 0
                    for chunk in response.iter_bytes(CHUNK):
                        self._check()
                        if position + len(chunk) > end + 1:
                            chunk = chunk[: end + 1 - position]
                        os.pwrite(fd, chunk, position)
                        position += len(chunk)
                        part.completed = position - part.offset
                        unsaved += len(chunk)
                        if unsaved >= 8 * CHUNK:
                            self._save_part(data_path, part)
                            unsaved = 0
                        report(False)
                        if position > end:
                            break
                finally:
                    response.close()
                    self._save_part(data_path, part)
                if part.completed < part.size:
                    raise RegistryError("connection closed before the part was complete")
            except (RegistryError, httpx.HTTPError) as exc:
                if isinstance(exc, RegistryError) and exc.status_code in (401, 404):
                    raise
                attempt += 1
                if attempt > self.retries:
                    raise RegistryError(f"download of part {part.n} failed: {exc}") from None
                delay = self.backoff_s * (2 ** (attempt - 1)) * (0.5 + random.random() / 2)
                log.info("part %d of %s: %s; retrying in %.1fs", part.n, data_path.name, exc, delay)
                if self.cancel.wait(delay):
                    raise Canceled() from None

    def _verify_and_link(self, layer: Layer, data_path: Path, n_parts: int) -> None:
        got = sha256_file(data_path)
        states = [data_path.with_name(f"{data_path.name}-{n}") for n in range(n_parts)]
        if got != layer.digest.lower():
            data_path.unlink(missing_ok=True)
            for state in states:
                state.unlink(missing_ok=True)
            raise RegistryError(f"digest mismatch, file must be downloaded again: want {layer.digest}, got {got}")
        self.store.link_blob(data_path, got)
        for state in states:
            state.unlink(missing_ok=True)

    # -- push ----------------------------------------------------------

    def push(self, emit: Emit) -> None:
        """Upload the model's blobs and manifest; emits Ollama's push status lines."""
        emit({"status": "retrieving manifest"})
        try:
            stored = self.store.get(self.name)
        except StoreError:
            emit({"status": "couldn't retrieve manifest"})
            raise
        manifest = stored.manifest
        layers = [*manifest.layers, *([manifest.config] if manifest.config else [])]
        for layer in layers:
            self._check()
            self._push_layer(layer, emit)
        emit({"status": "pushing manifest"})
        response = self.request(
            "PUT",
            self._url(f"manifests/{self.name.tag}"),
            headers={"Content-Type": MANIFEST_MEDIA_TYPE},
            content=stored.raw,
        )
        if response.status_code >= 400:
            raise status_error(response)
        emit({"status": "success"})

    def _push_layer(self, layer: Layer, emit: Emit) -> None:
        status = f"pushing {short_hex(layer.digest)}"
        head = self.request("HEAD", self._url(f"blobs/{layer.digest}"))
        if head.status_code == 200:
            emit({"status": status, "digest": layer.digest, "total": layer.size, "completed": layer.size})
            return
        if head.status_code not in (404,) and head.status_code >= 400:
            raise status_error(head)
        params: dict[str, str] = {}
        if layer.from_:
            try:
                source = parse_name(layer.from_)
            except ValueError:
                source = None
            if source is not None and source.host.lower() == self.name.host.lower() and source.repository != self.name.repository:
                params = {"mount": layer.digest, "from": source.repository}
        response = self.request("POST", self._url("blobs/uploads/"), params=params or None)
        if response.status_code == 201:
            emit({"status": status, "digest": layer.digest, "total": layer.size, "completed": layer.size})
            return
        if response.status_code >= 400:
            raise status_error(response)
        location = response.headers.get("Docker-Upload-Location") or response.headers.get("Location")
        if not location:
            raise RegistryError("registry did not return an upload location")
        location = urljoin(self._url("blobs/uploads/"), location)
        emit({"status": status, "digest": layer.digest, "total": layer.size, "completed": 0})
        part_size = self.upload_part_size or min(max(layer.size // 16, UPLOAD_MIN_PART), UPLOAD_MAX_PART)
        part_md5s: list[bytes] = []
        last = time.monotonic()
        path = self.store.blob_path(layer.digest)
        with open(path, "rb") as handle:
            offset = 0
            while offset < layer.size:
                self._check()
                chunk = handle.read(part_size)
                if not chunk:
                    raise StoreError(f"blob {layer.digest} is shorter than its manifest says")
                part_md5s.append(hashlib.md5(chunk).digest())  # noqa: S324 - etag, not security
                location = self._upload_part(location, chunk, offset, offset + len(chunk) - 1)
                offset += len(chunk)
                now = time.monotonic()
                if now - last >= PROGRESS_INTERVAL_S or offset == layer.size:
                    emit({"status": status, "digest": layer.digest, "total": layer.size, "completed": offset})
                    last = now
        etag = hashlib.md5(b"".join(part_md5s)).hexdigest() + f"-{len(part_md5s)}"  # noqa: S324
        split = urlsplit(location)
        query = "&".join(q for q in (split.query, urlencode({"digest": layer.digest, "etag": etag})) if q)
        finish = urlunsplit((split.scheme, split.netloc, split.path, query, ""))
        response = self.request("PUT", finish, headers={"Content-Length": "0"})
        if response.status_code >= 400:
            raise status_error(response)

    def _upload_part(self, location: str, chunk: bytes, start: int, end: int) -> str:
        """PATCH one part; return the URL for the next one."""
        headers = {
            "Content-Type": "application/octet-stream",
            "Content-Range": f"{start}-{end}",
            "X-Redirect-Uploads": "1",
        }
        response = self.request("PATCH", location, headers=headers, content=chunk)
        if response.status_code == 307:
            redirect = urljoin(location, response.headers.get("Location", ""))
            put = self.client.put(redirect, content=chunk, headers={"Content-Type": "application/octet-stream"})
            if put.status_code >= 400:
                raise status_error(put)
            return location
        if response.status_code >= 400:
            raise status_error(response)
        next_location = response.headers.get("Docker-Upload-Location") or response.headers.get("Location")
        return urljoin(location, next_location) if next_location else location


def pull_model(store: Store, name: ModelName, emit: Emit, *, insecure: bool = False, cancel: threading.Event | None = None, **kwargs: Any) -> None:
    """Pull ``name`` into ``store`` (blocking; run it in a worker thread)."""
    with RegistryClient(store, name, insecure=insecure, cancel=cancel, **kwargs) as client:
        client.pull(emit)


def push_model(store: Store, name: ModelName, emit: Emit, *, insecure: bool = False, cancel: threading.Event | None = None, **kwargs: Any) -> None:
    """Push ``name`` from ``store`` to its registry (blocking)."""
    with RegistryClient(store, name, insecure=insecure, cancel=cancel, **kwargs) as client:
        client.push(emit)
