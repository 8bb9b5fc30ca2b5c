"""Store internals: blobs, manifests, atomic writes, locking and pruning."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ggufutil import write_tiny_llama
from pyllama.config import Config, parse_host
from pyllama.store.create import create_model, validate_create
from pyllama.store.errors import InvalidRequest, NotFound
from pyllama.store.fsutil import atomic_write
from pyllama.store.layout import Store
from pyllama.store.manifest import CONFIG_MEDIA_TYPE, Layer, Manifest, decode_manifest, encode_manifest
from pyllama.store.names import parse_name
from serverutil import SRC_DIR


def make_manifest(store: Store, *texts: bytes) -> Manifest:
    config_digest, _ = store.write_blob(b"{}")
    layers = []
    for text in texts:
        digest, _ = store.write_blob(text)
        layers.append(Layer("application/vnd.ollama.image.system", digest, len(text)))
    return Manifest(config=Layer(CONFIG_MEDIA_TYPE, config_digest, 2), layers=layers)


def test_blob_writer_verifies_and_cleans_up(tmp_path: Path) -> None:
    store = Store(tmp_path)
    writer = store.blob_writer()
    writer.write(b"abc")
    with pytest.raises(InvalidRequest, match='digest mismatch, expected "sha256:'):
        writer.commit("sha256:" + "0" * 64)
    assert list(store.blobs_dir.iterdir()) == []
    writer = store.blob_writer()
    writer.write(b"abc")
    digest = writer.commit()
    assert store.blob_path(digest).read_bytes() == b"abc"
    assert [p.name for p in store.blobs_dir.iterdir()] == [digest.replace(":", "-")]
    with pytest.raises(InvalidRequest, match="invalid digest format"):
        store.blob_path("sha256:../../etc/passwd")


def test_atomic_write_replaces_whole_file(tmp_path: Path) -> None:
    target = tmp_path / "d" / "f"
    atomic_write(target, b"one")
    atomic_write(target, b"two")
    assert target.read_bytes() == b"two"
    assert [p.name for p in target.parent.iterdir()] == ["f"]
    assert oct(target.stat().st_mode & 0o777) == "0o644"


def test_manifest_requires_blobs_and_reports_orphans(tmp_path: Path) -> None:
    store = Store(tmp_path)
    name = parse_name("m")
    m1 = make_manifest(store, b"first")
    assert store.write_manifest(name, encode_manifest(m1), m1) == set()
    m2 = make_manifest(store, b"second")
    orphaned = store.write_manifest(name, encode_manifest(m2), m2)
    assert orphaned == {m1.layers[0].digest}
    assert store.prune_digests(orphaned) == [m1.layers[0].digest]
    missing = Manifest(config=m2.config, layers=[Layer("x", "sha256:" + "1" * 64, 1)])
    with pytest.raises(NotFound, match='blob "sha256:1111'):
        store.write_manifest(parse_name("other"), encode_manifest(missing), missing)
    assert not store.exists(parse_name("other"))
    raw = store.get(name).raw
    assert raw.endswith(b"}\n") and decode_manifest(raw) == m2


def test_delete_prunes_only_unshared_blobs(tmp_path: Path) -> None:
    store = Store(tmp_path)
    shared = make_manifest(store, b"shared", b"only-a")
    store.write_manifest(parse_name("a"), encode_manifest(shared), shared)
    b = make_manifest(store, b"shared")
    store.write_manifest(parse_name("ns/b:t"), encode_manifest(b), b)
    store.delete(parse_name("A"))  # case-insensitive
    assert store.has_blob(shared.layers[0].digest)
    assert not store.has_blob(shared.layers[1].digest)
    store.delete(parse_name("ns/b:t"))
    assert not store.has_blob(shared.layers[0].digest)
    assert list(store.manifests_dir.iterdir()) == []
    with pytest.raises(NotFound, match="model 'a:latest' not found"):
        store.delete(parse_name("a"))


def test_noprune(tmp_path: Path) -> None:
    store = Store(tmp_path, noprune=True)
    m = make_manifest(store, b"kept")
    store.write_manifest(parse_name("a"), encode_manifest(m), m)
    store.delete(parse_name("a"))
    assert store.has_blob(m.layers[0].digest)


def test_concurrent_create_and_delete_threads(tmp_path: Path) -> None:
    store = Store(tmp_path / "s")
    writer = store.blob_writer()
    writer.write(write_tiny_llama(tmp_path / "t.gguf").read_bytes())
    digest = writer.commit()
    keep = validate_create(model="keeper", files={"m.gguf": digest})
    create_model(store, keep, lambda _: None)  # keeps the weights referenced
    failures: list[BaseException] = []

    def creator(i: int) -> None:
        for j in range(15):
            spec = validate_create(model=f"churn{j % 3}", files={"m.gguf": digest}, system=f"s{i}-{j % 4}",
                                   parameters={"top_k": j})
            try:
                create_model(store, spec, lambda _: None)
            except BaseException as exc:  # noqa: BLE001
                failures.append(exc)

    def deleter() -> None:
        for j in range(45):
            try:
                store.delete(parse_name(f"churn{j % 3}"))
            except NotFound:
                pass

    threads = [threading.Thread(target=creator, args=(i,)) for i in range(3)] + [threading.Thread(target=deleter)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    for model in store.iter_models():
        assert all(store.has_blob(d) for d in model.manifest.digests()), model.name


def _upload(store: Store, path: Path) -> str:
    writer = store.blob_writer()
    writer.write(path.read_bytes())
    return writer.commit()


def _delete_when(store: Store, status: str, name: str) -> Callable[[dict[str, Any]], None]:
    """An ``emit`` that, when the create reports ``status``, deletes ``name``
    from another thread and waits for it: a delete that lands at exactly that
    point of the create."""
    def emit(line: dict[str, Any]) -> None:
        if line.get("status") == status:
            worker = threading.Thread(target=store.delete, args=(parse_name(name),))
            worker.start()
            worker.join()
    return emit


def test_delete_after_create_checked_the_upload_cannot_prune_it(tmp_path: Path) -> None:
    """The upload's only other user is deleted after the create has checked
    the blob but before its manifest exists: the blob is held, so the
    create succeeds and its manifest's blobs are all there."""
    store = Store(tmp_path / "s")
    digest = _upload(store, write_tiny_llama(tmp_path / "t.gguf"))
    create_model(store, validate_create(model="old", files={"m.gguf": digest}, system="old"), lambda _: None)
    emit = _delete_when(store, f"using existing layer {digest}", "old")
    create_model(store, validate_create(model="new", files={"m.gguf": digest}, system="new"), emit)
    assert not store.exists(parse_name("old"))
    new = store.get(parse_name("new"))
    assert digest in new.manifest.digests()
    assert all(store.has_blob(d) for d in new.manifest.digests())
    # Released once the manifest is written: deleting "new" now prunes everything.
    store.delete(parse_name("new"))
    assert list(store.blobs_dir.iterdir()) == []


def test_delete_before_create_checked_the_upload_fails_it_cleanly(tmp_path: Path) -> None:
    """A delete that prunes the blob before the create looks at it: the
    create fails with the documented 'blob ... not found' and writes nothing."""
    store = Store(tmp_path / "s")
    digest = _upload(store, write_tiny_llama(tmp_path / "t.gguf"))
    create_model(store, validate_create(model="old", files={"m.gguf": digest}), lambda _: None)
    emit = _delete_when(store, "parsing GGUF", "old")
    with pytest.raises(NotFound, match=f'^blob "{digest}" not found$'):
        create_model(store, validate_create(model="new", files={"m.gguf": digest}), emit)
    assert not store.exists(parse_name("new"))
    assert list(store.blobs_dir.iterdir()) == []


def test_deleting_the_base_while_deriving_from_it(tmp_path: Path) -> None:
    store = Store(tmp_path / "s")
    digest = _upload(store, write_tiny_llama(tmp_path / "t.gguf"))
    create_model(store, validate_create(model="base", files={"m.gguf": digest}), lambda _: None)
    emit = _delete_when(store, f"using existing layer {digest}", "base")
    create_model(store, validate_create(model="derived", from_="base", system="more"), emit)
    derived = store.get(parse_name("derived"))
    assert not store.exists(parse_name("base"))
    assert digest in derived.manifest.digests()
    assert all(store.has_blob(d) for d in derived.manifest.digests())


def test_holds_are_counted_per_holder(tmp_path: Path) -> None:
    """Two holds on one blob: pruning skips it until both end."""
    store = Store(tmp_path)
    digest, _ = store.write_blob(b"shared")
    with store.holding() as first:
        with store.holding() as second:
            first.require(digest)
            second.require(digest)
        assert store.prune_digests([digest]) == []
        assert Store(tmp_path).prune_digests([digest]) == []  # another Store object, same process
    assert store.prune_digests([digest]) == [digest]
    with store.holding() as hold, pytest.raises(NotFound, match=f'blob "{digest}" not found'):
        hold.require(digest)


def test_lock_excludes_other_processes(tmp_path: Path) -> None:
    store = Store(tmp_path)
    held, release = tmp_path / "held", tmp_path / "release"
    code = (
        "import sys, time, pathlib\n"
        f"sys.path.insert(0, {str(SRC_DIR)!r})\n"
        "from pyllama.store.layout import Store\n"
        f"s = Store({str(tmp_path)!r})\n"
        "with s.locked():\n"
        f"    pathlib.Path({str(held)!r}).touch()\n"
        f"    while not pathlib.Path({str(release)!r}).exists(): time.sleep(0.01)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code])
    try:
        while not held.exists():
            assert child.poll() is None
            threading.Event().wait(0.01)
        acquired = threading.Event()

        def take() -> None:
            with store.locked():
                acquired.set()

        thread = threading.Thread(target=take)
        thread.start()
        assert not acquired.wait(0.3)  # blocked while the other process holds it
        release.touch()
        thread.join(30)
        assert acquired.is_set()
    finally:
        release.touch()
        child.wait(30)


def test_config_env_fallback(tmp_path: Path) -> None:
    env = {
        "OLLAMA_MODELS": str(tmp_path / "o"),
        "PYLLAMA_HOST": "0.0.0.0:8080",
        "OLLAMA_HOST": "ignored:1",
        "OLLAMA_NOPRUNE": '"yes"',
        "PYLLAMA_NUM_PARALLEL": "4",
        "OLLAMA_MAX_QUEUE": "bad",
        "OLLAMA_KV_CACHE_TYPE": "Q8_0",
        "OLLAMA_FLASH_ATTENTION": "0",
        "OLLAMA_ORIGINS": "http://a.com, app://*",
    }
    config = Config.from_env(env)
    assert config.models == tmp_path / "o"
    assert (config.host, config.port) == ("0.0.0.0", 8080)
    assert config.noprune is True and config.num_parallel == 4 and config.max_queue == 512
    assert config.kv_cache_type == "q8_0" and config.flash_attention is False
    assert config.origins == ("http://a.com", "app://*")
    assert config.base_url == "http://127.0.0.1:8080"
    default = Config.from_env({})
    assert default.models == Path.home() / ".pyllama" / "models"
    assert (default.host, default.port, default.keep_alive) == ("127.0.0.1", 11434, "5m")
    assert parse_host("http://example.com") == ("http", "example.com", 80)
    assert parse_host("https://example.com") == ("https", "example.com", 443)
    assert parse_host("[::1]:9000") == ("http", "::1", 9000)
    assert parse_host("ollama.com") == ("https", "ollama.com", 443)
    assert parse_host("example.com") == ("http", "example.com", 11434)
