"""The content-addressed artifact store, on a local folder and on an fsspec memory root."""

from __future__ import annotations

import hashlib
import os
import signal
import stat
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import fsspec
import pytest

from modelyard.errors import ArtifactError, InvalidInputError
from modelyard.store import ArtifactStore, Blob


@pytest.fixture(params=["local", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ArtifactStore]:
    if request.param == "local":
        yield ArtifactStore(tmp_path / "artifacts", cache_dir=tmp_path / "cache")
        return
    root = f"memory://modelyard-{uuid.uuid4().hex}"
    yield ArtifactStore(root, cache_dir=tmp_path / "cache")
    _forget(root)


def _forget(memory_root: str) -> None:
    """The memory filesystem is global to the process: empty what the test stored."""
    fs = fsspec.filesystem("memory")
    if fs.exists(memory_root):
        fs.rm(memory_root, recursive=True)


def _overwrite(store: ArtifactStore, digest: str, data: bytes) -> None:
    """Damage a stored blob behind the store's back."""
    fs, path = fsspec.core.url_to_fs(store.root)
    blob_path = f"{path}/sha256/{digest[:2]}/{digest[2:4]}/{digest}"
    if isinstance(store.root, str) and "://" not in store.root:
        os.chmod(blob_path, 0o644)  # noqa: PTH101 - blobs are stored read-only
    fs.pipe_file(blob_path, data)


def test_bytes_round_trip(store: ArtifactStore) -> None:
    blob = store.put_bytes(b"hello")
    assert blob == Blob(hashlib.sha256(b"hello").hexdigest(), 5)
    assert store.get_bytes(blob.digest) == b"hello"
    with store.open(blob.digest) as f:
        assert f.read() == b"hello"
    assert store.local_path(blob.digest).read_bytes() == b"hello"
    assert store.exists(blob.digest)


def test_large_file_round_trip(store: ArtifactStore, tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)  # several 1 MiB chunks and a tail
    source = tmp_path / "big.bin"
    source.write_bytes(data)
    blob = store.put_file(source)
    assert blob == Blob(hashlib.sha256(data).hexdigest(), len(data))
    assert store.get_bytes(blob.digest) == data


def test_same_content_is_stored_once(store: ArtifactStore) -> None:
    first = store.put_bytes(b"same")
    second = store.put_bytes(b"same")
    other = store.put_bytes(b"different")
    assert first == second
    assert list(store.iter_digests()) == sorted([first.digest, other.digest])


def test_corrupted_blob_is_detected_on_every_read(store: ArtifactStore) -> None:
    blob = store.put_bytes(b"original")
    _overwrite(store, blob.digest, b"tampered")
    reads: list[Callable[[str], Any]] = [store.get_bytes, store.open, store.local_path]
    for read in reads:
        with pytest.raises(ArtifactError, match=f"{blob.digest}.*fails its integrity check"):
            read(blob.digest)


def test_putting_the_content_again_repairs_a_truncated_blob(store: ArtifactStore) -> None:
    blob = store.put_bytes(b"original content")
    _overwrite(store, blob.digest, b"orig")
    assert store.put_bytes(b"original content") == blob
    assert store.get_bytes(blob.digest) == b"original content"


def test_missing_blob_is_an_artifact_error_naming_it(store: ArtifactStore) -> None:
    digest = hashlib.sha256(b"never stored").hexdigest()
    assert not store.exists(digest)
    for read in (store.get_bytes, store.open, store.local_path):
        with pytest.raises(ArtifactError, match=f"{digest} is missing.*Restore it"):
            read(digest)


def test_delete_removes_the_blob(store: ArtifactStore) -> None:
    blob = store.put_bytes(b"bye")
    store.local_path(blob.digest)
    assert store.delete(blob.digest) is True
    assert store.delete(blob.digest) is False
    assert not store.exists(blob.digest)
    with pytest.raises(ArtifactError, match="missing"):
        store.open(blob.digest)


@pytest.mark.parametrize(
    "digest",
    ["../../../etc/passwd", "A" * 64, "a" * 63, "a" * 65, "/" + "a" * 63, "", "g" * 64],
)
def test_digests_that_could_escape_the_root_are_refused(store: ArtifactStore, digest: str) -> None:
    for call in (store.get_bytes, store.open, store.local_path, store.exists, store.delete):
        with pytest.raises(InvalidInputError, match="not a sha256 digest"):
            call(digest)


def test_remote_reads_use_a_verified_local_copy(tmp_path: Path) -> None:
    root = f"memory://modelyard-{uuid.uuid4().hex}"
    store = ArtifactStore(root, cache_dir=tmp_path / "cache")
    blob = store.put_bytes(b"remote")
    cached = store.local_path(blob.digest)
    assert cached.is_relative_to(tmp_path / "cache")
    cached.chmod(0o644)
    cached.write_bytes(b"damaged copy")
    assert store.local_path(blob.digest).read_bytes() == b"remote"  # fetched again
    _forget(root)


def test_local_blobs_are_read_only_files(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    path = store.local_path(store.put_bytes(b"frozen").digest)
    assert path == tmp_path / "sha256" / path.name[:2] / path.name[2:4] / path.name
    assert not path.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)


def test_temporary_files_are_not_blobs_and_get_swept(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    store.put_bytes(b"real")
    leftovers = tmp_path / "tmp"
    (leftovers / "old.part").write_bytes(b"half")
    (leftovers / "fresh.part").write_bytes(b"half")
    os.utime(leftovers / "old.part", (0, 0))
    assert list(store.iter_digests()) == [hashlib.sha256(b"real").hexdigest()]

    assert store.sweep_tmp(older_than_seconds=3600) == 1
    assert [p.name for p in leftovers.iterdir()] == ["fresh.part"]


@pytest.mark.timeout(60)
def test_writer_killed_mid_put_file_leaves_no_blob(
    tmp_path: Path, spawn: Callable[..., Any]
) -> None:
    root = tmp_path / "artifacts"
    fifo = tmp_path / "source"
    os.mkfifo(fifo)
    worker = spawn("put", str(root), str(fifo))
    with fifo.open("wb") as source:  # opens once the worker is reading
        # The pipe holds 64 KiB, so when this returns the worker has read
        # (and written to its temporary file) more than 3 MiB, in 1 MiB chunks.
        source.write(os.urandom(4 * 1024 * 1024))
        source.flush()
        assert worker.kill() == -signal.SIGKILL

    store = ArtifactStore(root)
    partial = list((root / "tmp").iterdir())
    assert len(partial) == 1
    assert partial[0].stat().st_size >= 3 * 1024 * 1024  # killed mid-write
    assert list(store.iter_digests()) == []
    assert not (root / "sha256").exists() or not any((root / "sha256").rglob("*"))
    assert store.sweep_tmp(older_than_seconds=0) == 1
    assert store.get_bytes(store.put_bytes(b"after").digest) == b"after"


def test_default_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MODELYARD_ARTIFACTS", raising=False)
    assert ArtifactStore.default_root(tmp_path) == str(tmp_path / "artifacts")
    monkeypatch.setenv("MODELYARD_ARTIFACTS", "s3://bucket/prefix")
    assert ArtifactStore.default_root(tmp_path) == "s3://bucket/prefix"


def test_unknown_protocol_says_what_to_install() -> None:
    with pytest.raises(ArtifactError, match="Cannot open the artifact store"):
        ArtifactStore("nosuchprotocol://bucket")
