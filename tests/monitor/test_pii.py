"""The PII key and keyed hashing: HMAC-SHA256 as the standard library computes it, one key."""

from __future__ import annotations

import hashlib
import hmac
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from modelyard.errors import ArtifactError, InvalidInputError
from modelyard.monitor.pii import ENV_KEY, KeyedHasher, hash_values, project_key
from modelyard.project import Project


def _oracle(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest()


def test_hash_values_is_hmac_sha256_of_the_utf8_text() -> None:
    key = b"k" * 32
    values = ["alice@example.com", None, "zoë@exämple.org", 7, ""]
    assert hash_values(values, key) == [
        _oracle(key, "alice@example.com"),
        None,
        _oracle(key, "zoë@exämple.org"),
        _oracle(key, "7"),
        _oracle(key, ""),
    ]
    assert hash_values([7], key) == hash_values(["7"], key)


def test_the_digest_depends_on_the_key() -> None:
    first, second = (
        hash_values(["alice@example.com"], b"a" * 32),
        hash_values(["alice@example.com"], b"b" * 32),
    )
    assert first != second
    assert first != [hashlib.sha256(b"alice@example.com").hexdigest()]  # not an unkeyed hash


def test_a_hasher_is_reusable_and_equals_the_function() -> None:
    hasher = KeyedHasher(b"s" * 32)
    assert hasher(["x", "y"]) == hash_values(["x", "y"], b"s" * 32)
    assert hasher(["x"]) == hasher(["x"])


@pytest.fixture
def no_env_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_KEY, raising=False)


@pytest.mark.usefixtures("no_env_key")
def test_key_file_is_made_once_private_and_kept(project: Project) -> None:
    key = project_key(project)
    path = project.root / ".modelyard" / "pii.key"
    assert len(key) == 32 and path.read_bytes() == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert project_key(project) == key
    leftovers = [p.name for p in path.parent.iterdir() if p.name.startswith(".pii.key")]
    assert leftovers == []


@pytest.mark.usefixtures("no_env_key")
def test_workers_starting_together_share_one_key(project: Project) -> None:
    with ThreadPoolExecutor(8) as pool:
        keys = set(pool.map(lambda _: project_key(project), range(32)))
    assert keys == {(project.root / ".modelyard" / "pii.key").read_bytes()}


def test_the_environment_key_wins(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_KEY, "a-long-enough-secret-for-tests")
    assert project_key(project) == b"a-long-enough-secret-for-tests"
    assert not (project.root / ".modelyard" / "pii.key").exists()


def test_a_short_environment_key_is_refused(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_KEY, "short")
    with pytest.raises(InvalidInputError, match="at least 16") as raised:
        project_key(project)
    assert "short" not in raised.value.message  # never echo a secret


@pytest.mark.usefixtures("no_env_key")
def test_a_damaged_key_file_is_reported_not_replaced(project: Project) -> None:
    path: Path = project.root / ".modelyard" / "pii.key"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"truncated")
    with pytest.raises(ArtifactError, match="Restore it"):
        project_key(project)
    assert path.read_bytes() == b"truncated"
