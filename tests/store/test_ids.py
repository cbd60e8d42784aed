"""ULIDs: 26 Crockford base32 characters, unique, ordered by creation time."""

from __future__ import annotations

import os
import time
from datetime import UTC

from hypothesis import given
from hypothesis import strategies as st

from modelyard.store import new_id, utcnow
from modelyard.store.ids import ALPHABET, encode


def _decode(ulid: str) -> int:
    value = 0
    for char in ulid:
        value = value * 32 + ALPHABET.index(char)
    return value


def test_ids_have_the_ulid_shape() -> None:
    ulid = new_id()
    assert len(ulid) == 26
    assert set(ulid) <= set(ALPHABET)
    assert ulid[0] <= "7"  # 128 bits fill 26 characters but the first only partly


def test_the_first_48_bits_are_the_creation_millisecond() -> None:
    before = time.time_ns() // 1_000_000
    ulid = new_id()
    after = time.time_ns() // 1_000_000
    assert before <= _decode(ulid) >> 80 <= after


def test_ids_made_in_a_tight_loop_are_distinct_and_sorted() -> None:
    ids = [new_id() for _ in range(20_000)]  # many share a millisecond
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)


def test_a_forked_child_does_not_repeat_its_parent() -> None:
    new_id()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.write(write_end, new_id().encode())
        os._exit(0)
    os.close(write_end)
    parent_id = new_id()
    child_id = os.read(read_end, 26).decode()
    os.waitpid(pid, 0)
    assert child_id != parent_id


@given(st.integers(min_value=0, max_value=2**128 - 1))
def test_encoding_is_lossless_and_order_preserving(value: int) -> None:
    encoded = encode(value)
    assert _decode(encoded) == value
    assert (encoded < encode(value + 1)) if value < 2**128 - 1 else True


def test_utcnow_is_timezone_aware() -> None:
    assert utcnow().tzinfo is UTC
