"""Keyed hashing of personal data (PII) before it reaches the prediction log.

Columns named in ``columns.pii`` are stored as HMAC-SHA256 of their UTF-8
text under a secret project key, never as sent. The key matters: an unkeyed
hash of an e-mail address, a phone number or a national id is reversible by
dictionary — the set of plausible values is small enough to hash them all and
look the stored digest up. With a secret key the digest is useless without
the key, yet the same value still maps to the same digest, so joins, counts
and drift on the column keep working.

The key is ``MODELYARD_PII_KEY`` (its UTF-8 bytes, at least 16 of them) when
set, else 32 random bytes generated once into ``<project>/.modelyard/pii.key``
(mode 0600). Processes that write one log must share a key: set
``MODELYARD_PII_KEY`` on every machine when workers run on more than one.
Losing or changing the key changes every digest from then on.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelyard.errors import ArtifactError, InvalidInputError

if TYPE_CHECKING:
    from modelyard.project import Project

ENV_KEY = "MODELYARD_PII_KEY"
KEY_FILE = "pii.key"
KEY_BYTES = 32
MIN_ENV_KEY_BYTES = 16


def project_key(project: Project) -> bytes:
    """The project's PII key: ``$MODELYARD_PII_KEY``, else the key file (made on first use)."""
    from_env = os.environ.get(ENV_KEY)
    if from_env is not None:
        key = from_env.encode("utf-8")
        if len(key) < MIN_ENV_KEY_BYTES:
            raise InvalidInputError(
                f"{ENV_KEY} is {len(key)} bytes long; a PII key needs at least "
                f"{MIN_ENV_KEY_BYTES}. Set it to random text, e.g. the output of "
                "`python -c 'import secrets; print(secrets.token_hex(32))'`."
            )
        return key
    from modelyard.project import STATE_FOLDER

    return _file_key(project.root / STATE_FOLDER / KEY_FILE)


def _file_key(path: Path) -> bytes:
    if not path.exists():
        _create_key(path)
    key = path.read_bytes()
    if len(key) != KEY_BYTES:
        raise ArtifactError(
            f"The PII key {path} holds {len(key)} bytes, not {KEY_BYTES}. Restore it from a "
            f"backup, or set {ENV_KEY}; deleting it makes a new key, and every PII digest "
            "written from then on will differ from the earlier ones."
        )
    return key


def _create_key(path: Path) -> None:
    """Write a new key without ever exposing a partial file or replacing another's key.

    Several server workers may start at once: each writes a private temporary
    file and hard-links it into place; the first link wins and the others read it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(secrets.token_bytes(KEY_BYTES))
        with contextlib.suppress(FileExistsError):  # another process made it first: use theirs
            path.hardlink_to(temporary)
    finally:
        temporary.unlink(missing_ok=True)


class KeyedHasher:
    """HMAC-SHA256 under one key, with the key schedule computed once (about 2 µs a value)."""

    def __init__(self, key: bytes) -> None:
        self._base = hmac.new(key, digestmod=hashlib.sha256)

    def __call__(self, values: Iterable[Any]) -> list[str | None]:
        return [self.one(value) for value in values]

    def one(self, value: Any) -> str | None:
        """The digest of one value (None stays None)."""
        if value is None:
            return None
        digest = self._base.copy()
        digest.update((value if type(value) is str else str(value)).encode("utf-8"))
        return digest.hexdigest()


def hash_values(values: Iterable[Any], key: bytes) -> list[str | None]:
    """HMAC-SHA256 hex of each value's UTF-8 text under ``key``; None stays None.

    Non-text values are hashed as ``str(value)`` (the text a category code is
    looked up by), so ``7`` and ``"7"`` share a digest.
    """
    return KeyedHasher(key)(values)


__all__ = ["ENV_KEY", "KeyedHasher", "hash_values", "project_key"]
