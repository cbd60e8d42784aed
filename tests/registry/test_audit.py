"""The audit hash chain, on SQLite and PostgreSQL: appends, verify, and tampering found by seq."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from modelyard.data.demo import DEMO_SPEC
from modelyard.errors import InvalidInputError
from modelyard.project import Project
from modelyard.registry.audit import event_hash, events, record, verify
from modelyard.store import tables


@pytest.fixture
def project(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Project]:
    """The demo project on each metadata backend."""
    monkeypatch.setenv("MODELYARD_DB_URL", db_url)
    monkeypatch.delenv("MODELYARD_ARTIFACTS", raising=False)
    (tmp_path / "modelyard.yaml").write_text(DEMO_SPEC)
    opened = Project.open(tmp_path / "modelyard.yaml")
    yield opened
    opened.close()


def _append(project: Project, n: int) -> list[int]:
    seqs = []
    for i in range(n):
        with project.db.write() as session:
            event = record(
                session,
                actor=f"user{i}",
                action="model.approve",
                object_type="model_version",
                object_id=f"loans@{i + 1}",
                payload={"comment": f"ok {i}", "score": 0.5 + i, "big": 1e16, "nested": [1.0]},
            )
            seqs.append(event.seq)
    return seqs


def _sql(project: Project, statement: sa.Executable) -> None:
    """Change the table directly, as someone with database access would."""
    with project.db.write() as session:
        session.execute(statement)


def test_events_chain_and_verify(project: Project) -> None:
    seqs = _append(project, 4)
    result = verify(project)
    assert result.ok and result.events == 4 and result.first_bad_seq is None
    listed = events(project)
    assert [e.seq for e in listed] == seqs[::-1]
    assert listed[-1].prev_hash is None
    assert all(newer.prev_hash == older.hash for newer, older in itertools.pairwise(listed))
    assert result.head_hash == listed[0].hash
    first = listed[-1]
    assert first.hash == event_hash(
        first.ts, first.actor, first.action, first.object_type, first.object_id,
        first.payload, None,
    )  # fmt: skip


def test_an_empty_log_verifies(project: Project) -> None:
    assert verify(project).ok and verify(project).events == 0


def test_a_failed_transaction_appends_nothing(project: Project) -> None:
    _append(project, 1)
    with pytest.raises(RuntimeError), project.db.write() as session:
        record(session, actor="a", action="x", object_type="t", object_id="o")
        raise RuntimeError("boom")
    assert len(events(project)) == 1 and verify(project).ok


def test_an_edited_payload_is_named(project: Project) -> None:
    seqs = _append(project, 4)
    _sql(
        project,
        sa.update(tables.AuditEvent)
        .where(tables.AuditEvent.seq == seqs[2])
        .values(payload={"comment": "forged", "score": 2.5, "big": 1e16, "nested": [1.0]}),
    )
    result = verify(project)
    assert not result.ok and result.first_bad_seq == seqs[2]
    assert "changed" in (result.reason or "")


def test_an_edited_actor_is_named(project: Project) -> None:
    seqs = _append(project, 3)
    _sql(project, sa.text(f"UPDATE audit_events SET actor = 'mallory' WHERE seq = {seqs[0]}"))
    result = verify(project)
    assert not result.ok and result.first_bad_seq == seqs[0]


def test_a_deleted_middle_event_is_named_by_its_successor(project: Project) -> None:
    seqs = _append(project, 5)
    _sql(project, sa.delete(tables.AuditEvent).where(tables.AuditEvent.seq == seqs[1]))
    result = verify(project)
    assert not result.ok and result.first_bad_seq == seqs[2]
    assert "removed" in (result.reason or "")


def test_a_deleted_first_event_is_found(project: Project) -> None:
    seqs = _append(project, 3)
    _sql(project, sa.delete(tables.AuditEvent).where(tables.AuditEvent.seq == seqs[0]))
    result = verify(project)
    assert not result.ok and result.first_bad_seq == seqs[1]


def test_swapped_events_are_found(project: Project) -> None:
    seqs = _append(project, 4)
    a, b = seqs[1], seqs[2]
    for old, new in ((a, -1), (b, a), (-1, b)):
        _sql(project, sa.text(f"UPDATE audit_events SET seq = {new} WHERE seq = {old}"))
    result = verify(project)
    assert not result.ok and result.first_bad_seq == a


def test_a_reinserted_event_is_found(project: Project) -> None:
    seqs = _append(project, 4)
    with project.db.write() as session:
        moved = session.get_one(tables.AuditEvent, seqs[1])
        copy = {c.key: getattr(moved, c.key) for c in sa.inspect(tables.AuditEvent).columns}
        session.delete(moved)
        session.flush()
        del copy["seq"]
        session.add(tables.AuditEvent(**copy))
    result = verify(project)
    assert not result.ok and result.first_bad_seq == seqs[2]


def test_truncating_the_tail_changes_the_head_hash(project: Project) -> None:
    """Chains cannot see a removed tail by themselves: keep ``head_hash`` elsewhere."""
    seqs = _append(project, 3)
    head = verify(project).head_hash
    _sql(project, sa.delete(tables.AuditEvent).where(tables.AuditEvent.seq == seqs[-1]))
    after = verify(project)
    assert after.ok and after.events == 2 and after.head_hash != head


def test_events_filter_by_object(project: Project) -> None:
    _append(project, 3)
    with project.db.write() as session:
        record(session, actor="a", action="alias.move", object_type="model_alias",
               object_id="loans@champion")  # fmt: skip
        record(session, actor="a", action="x", object_type="t", object_id="loansy@1")
    assert [e.object_id for e in events(project, object_id="loans@2")] == ["loans@2"]
    assert len(events(project, object_id="loans")) == 4
    assert len(events(project, object_type="model_alias")) == 1
    assert len(events(project, limit=2)) == 2


def test_payloads_must_be_plain_json(project: Project) -> None:
    with pytest.raises(InvalidInputError, match="not plain JSON"), project.db.write() as session:
        record(session, actor="a", action="x", object_type="t", object_id="o",
               payload={"when": object()})  # fmt: skip
    with pytest.raises(InvalidInputError), project.db.write() as session:
        record(session, actor="a", action="x", object_type="t", object_id="o",
               payload={"v": float("nan")})  # fmt: skip
