"""The artifact store: immutable blobs named by the sha256 of their content.

    store = ArtifactStore(ArtifactStore.default_root(Path(".modelyard")))
    blob = store.put_file("model.onnx")        # Blob(digest="9f86d0...", size=1234)
    data = store.get_bytes(blob.digest)        # verified against the digest

The root is a local folder or any fsspec URL (``s3://bucket/prefix`` with
s3fs installed; ``memory://name`` in tests). A blob lives at
``root/sha256/ab/cd/<digest>``. Putting the same content twice stores it
once. Callers write the blob first and then the database row that names it,
so a row never points at a blob that is not there yet (R9.3).

A blob never appears half-written: locally it is written under ``root/tmp/``
and renamed into place (``os.replace`` is atomic); object stores have no
rename, so the content is first spooled and hashed in a local temporary file
and then uploaded in one put, which is atomic there. Leftovers of killed
writers stay in the temporary folders until ``sweep_tmp`` removes them.

Every read checks the sha256 (R5.5), so a damaged or swapped file is
reported, never silently used.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO

from modelyard.errors import ArtifactError, InvalidInputError

ENV_ROOT = "MODELYARD_ARTIFACTS"
CHUNK_SIZE = 1 << 20
_DIGEST = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Blob:
    """A stored blob: the sha256 hex digest of its content, and its size in bytes."""

    digest: str
    size: int


def validate_digest(digest: str) -> str:
    """Return ``digest`` if it is 64 lowercase hex characters, so no path can escape the root."""
    if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
        raise InvalidInputError(
            f"{digest!r} is not a sha256 digest: expected 64 lowercase hexadecimal characters "
            "(as in Blob.digest).",
            details={"digest": str(digest)[:100]},
        )
    return digest


class ArtifactStore:
    """Content-addressed blobs under a local folder or an fsspec URL."""

    def __init__(self, root: str | os.PathLike[str], *, cache_dir: Path | None = None) -> None:
        self.root = str(root)
        self._fs, self._path = _filesystem(self.root)
        self._local = "file" in _protocols(self._fs)
        self._cache_dir = cache_dir or _default_cache_dir()

    @staticmethod
    def default_root(folder: Path) -> str:
        """``MODELYARD_ARTIFACTS`` if set, else ``folder/artifacts``."""
        return os.environ.get(ENV_ROOT) or str(folder / "artifacts")

    def __repr__(self) -> str:
        return f"ArtifactStore({self.root!r})"

    # ------------------------------------------------------------------ writing

    def put_bytes(self, data: bytes) -> Blob:
        """Store ``data``; returns its Blob (a no-op if the content is already stored)."""
        return self.put_stream(io.BytesIO(data))

    def put_file(self, path: str | os.PathLike[str]) -> Blob:
        """Store the file at ``path``, read in 1 MiB chunks so memory use stays bounded."""
        try:
            source = Path(path).open("rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise ArtifactError(
                f"Cannot read {path} to store it: {exc.strerror or exc}. "
                "Check that the file exists and is readable."
            ) from exc
        with source:
            return self.put_stream(source)

    def put_stream(self, stream: IO[bytes]) -> Blob:
        """Store everything ``stream`` yields until its end."""
        with self._io_errors("write to"):
            spool_dir = self._tmp_dir() if self._local else self._cache_dir / "tmp"
            with _spooled(stream, spool_dir) as (tmp, blob):
                self._publish(tmp, blob)
        return blob

    def _publish(self, tmp: Path, blob: Blob) -> None:
        """Move the finished temporary file to the blob's final name, unless it is there."""
        final = self._blob_path(blob.digest)
        if self._fs.exists(final) and self._fs.size(final) == blob.size:
            return  # same content already stored
        if self._local:
            Path(final).parent.mkdir(parents=True, exist_ok=True)
            tmp.replace(final)  # atomic rename
        else:
            self._fs.put_file(str(tmp), final)

    # ------------------------------------------------------------------ reading

    def get_bytes(self, digest: str) -> bytes:
        """The blob's content, after checking its sha256."""
        path = self._blob_path(validate_digest(digest))
        with self._read_errors(digest, path):
            data: bytes = self._fs.cat_file(path)
        self._check(digest, path, hashlib.sha256(data).hexdigest())
        return data

    def open(self, digest: str) -> BinaryIO:
        """A read-only binary file holding the blob, checked before it is returned."""
        return self.local_path(digest).open("rb")

    def local_path(self, digest: str) -> Path:
        """A local file with the blob's checked content (for a remote root, a cached copy)."""
        path = self._blob_path(validate_digest(digest))
        if self._local:
            with self._read_errors(digest, path), Path(path).open("rb") as f:
                self._check(digest, path, _sha256(f))
            return Path(path)
        return self._cached(digest, path)

    def _cached(self, digest: str, path: str) -> Path:
        cached = self._cache_dir / _relative(digest)
        if cached.exists():
            with cached.open("rb") as f:
                if _sha256(f) == digest:
                    return cached
        with (
            self._read_errors(digest, path),
            self._fs.open(path, "rb") as remote,
            _spooled(remote, self._cache_dir / "tmp") as (tmp, blob),
        ):
            self._check(digest, path, blob.digest)
            cached.parent.mkdir(parents=True, exist_ok=True)
            tmp.replace(cached)
        return cached

    def exists(self, digest: str) -> bool:
        """Whether the blob is stored (its content is not checked)."""
        path = self._blob_path(validate_digest(digest))
        with self._io_errors("read"):
            return bool(self._fs.exists(path))

    def iter_digests(self) -> Iterator[str]:
        """Every stored digest, in sorted order; temporary files are never listed."""
        with self._io_errors("list"):
            try:
                paths: list[str] = self._fs.find(f"{self._path}/sha256")
            except FileNotFoundError:
                paths = []
        for path in sorted(paths):
            name = path.rsplit("/", 1)[-1]
            if _DIGEST.fullmatch(name) and path.endswith(_relative(name)):
                yield name

    # ------------------------------------------------------------------ housekeeping

    def delete(self, digest: str) -> bool:
        """Remove the blob (and any cached copy); True if it was stored."""
        path = self._blob_path(validate_digest(digest))
        (self._cache_dir / _relative(digest)).unlink(missing_ok=True)
        with self._io_errors("delete from"):
            if not self._fs.exists(path):
                return False
            self._fs.rm_file(path)
        return True

    def sweep_tmp(self, older_than_seconds: float = 3600.0) -> int:
        """Delete temporary files left by killed writers; returns how many were removed.

        Only files older than ``older_than_seconds`` go, so a running writer's
        file survives.
        """
        folders = [self._cache_dir / "tmp"]
        if self._local:
            folders.append(self._tmp_dir(create=False))
        cutoff = time.time() - older_than_seconds
        removed = 0
        for folder in folders:
            for entry in folder.glob("*.part") if folder.is_dir() else []:
                if entry.stat().st_mtime <= cutoff:
                    entry.unlink(missing_ok=True)
                    removed += 1
        return removed

    # ------------------------------------------------------------------ helpers

    def _blob_path(self, digest: str) -> str:
        return f"{self._path}/{_relative(digest)}"

    def _tmp_dir(self, *, create: bool = True) -> Path:
        folder = Path(self._path) / "tmp"
        if create:
            folder.mkdir(parents=True, exist_ok=True)
        return folder

    def _check(self, digest: str, path: str, actual: str) -> None:
        if actual != digest:
            raise ArtifactError(
                f"Blob sha256:{digest} at {path} fails its integrity check (its content hashes "
                f"to {actual}): the file was damaged or replaced. Restore it from a backup, or "
                "delete it and re-run the step that produced it.",
                details={"digest": digest, "path": path, "actual": actual},
            )

    @contextmanager
    def _read_errors(self, digest: str, path: str) -> Iterator[None]:
        try:
            yield
        except FileNotFoundError as exc:
            raise ArtifactError(
                f"Blob sha256:{digest} is missing from the artifact store {self.root} "
                f"(expected at {path}). Restore it from a backup, or re-run the step that "
                "produced it; check MODELYARD_ARTIFACTS points at the right store.",
                details={"digest": digest, "path": path},
            ) from exc
        except OSError as exc:
            raise self._io_error("read", exc) from exc

    @contextmanager
    def _io_errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except OSError as exc:
            raise self._io_error(action, exc) from exc

    def _io_error(self, action: str, exc: OSError) -> ArtifactError:
        return ArtifactError(
            f"Cannot {action} the artifact store {self.root}: {exc}. Check that the location "
            "exists and is writable, and for object stores that credentials are configured.",
            details={"root": self.root},
        )


@contextmanager
def _spooled(stream: IO[bytes], folder: Path) -> Iterator[tuple[Path, Blob]]:
    """Copy ``stream`` into a new temporary file while hashing it; the file is removed
    afterwards unless the caller moved it away."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f"{uuid.uuid4().hex}.part"
    # Read-only from birth (blobs never change); the umask still applies.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
    try:
        digest, size = hashlib.sha256(), 0
        with os.fdopen(fd, "wb") as out:
            while chunk := stream.read(CHUNK_SIZE):
                digest.update(chunk)
                out.write(chunk)
                size += len(chunk)
            out.flush()
            os.fsync(out.fileno())
        yield tmp, Blob(digest.hexdigest(), size)
    finally:
        tmp.unlink(missing_ok=True)


def _sha256(f: IO[bytes]) -> str:
    digest = hashlib.sha256()
    while chunk := f.read(CHUNK_SIZE):
        digest.update(chunk)
    return digest.hexdigest()


def _relative(digest: str) -> str:
    return f"sha256/{digest[:2]}/{digest[2:4]}/{digest}"


def _filesystem(root: str) -> tuple[Any, str]:
    """The fsspec filesystem and path for ``root``, with missing drivers explained."""
    import fsspec.core

    try:
        fs, path = fsspec.core.url_to_fs(root)
    except (ImportError, ValueError) as exc:
        raise ArtifactError(
            f"Cannot open the artifact store {root}: {exc}. For s3:// install the 's3' extra "
            "(pip install 'modelyard[s3]'); otherwise use a local folder."
        ) from exc
    return fs, str(path).rstrip("/")


def _protocols(fs: Any) -> tuple[str, ...]:
    protocol = fs.protocol
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)


def _default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "modelyard" / "blobs"
