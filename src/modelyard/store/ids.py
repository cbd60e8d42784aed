"""Record identifiers (ULIDs) and the one clock every record uses.

A ULID is a 48-bit millisecond timestamp followed by 80 random bits, written
as 26 Crockford base32 characters. Sorting ULIDs as strings sorts them by
creation time, so ``ORDER BY id`` lists runs in the order they started, and
ids can be made on any machine without asking the database.

Within one process the ids are strictly increasing even when many are made
in the same millisecond (the random part is incremented instead of redrawn).
A forked child starts afresh, so parent and child never hand out the same id.
"""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
"""Crockford's base32 alphabet (no I, L, O or U), in ascending ASCII order."""

_RANDOM_BITS = 80
_LENGTH = 26


def utcnow() -> datetime:
    """The current time as a timezone-aware UTC datetime (what every column stores)."""
    return datetime.now(UTC)


def new_id() -> str:
    """A new ULID: 26 characters, unique, and ordered by creation time."""
    return _generator.next()


def encode(value: int) -> str:
    """Write a 128-bit integer as 26 Crockford base32 characters."""
    chars = []
    for _ in range(_LENGTH):
        chars.append(ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


class _MonotonicUlid:
    """Makes ULIDs that increase strictly within this process."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget the last id; called in a forked child so it cannot repeat its parent."""
        self._lock = threading.Lock()
        self._last_ms = -1
        self._last_random = 0

    def next(self) -> str:
        with self._lock:
            ms = time.time_ns() // 1_000_000
            if ms > self._last_ms:
                rand = int.from_bytes(os.urandom(_RANDOM_BITS // 8), "big")
            else:  # same millisecond, or the clock stepped back: keep counting up
                ms, rand = self._last_ms, self._last_random + 1
                if rand >> _RANDOM_BITS:
                    ms, rand = ms + 1, int.from_bytes(os.urandom(_RANDOM_BITS // 8), "big")
            self._last_ms, self._last_random = ms, rand
        return encode((ms << _RANDOM_BITS) | rand)


_generator = _MonotonicUlid()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_generator.reset)
