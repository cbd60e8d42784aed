"""The audit log: an append-only hash chain of every governance action.

Each event stores the hash of the event before it (``prev_hash``) and its
own ``hash``: the sha256 of the canonical JSON (sorted keys, no spaces) of
``ts`` (ISO 8601, UTC), ``actor``, ``action``, ``object_type``,
``object_id``, ``payload`` and ``prev_hash``. The ``seq`` number is not
hashed; the chain itself fixes the order.

    with project.db.write() as session:        # the caller's transaction
        change_something(session)
        record(session, actor="ana", action="model.promote",
               object_type="model_version", object_id="loans@3", payload={...})

``record`` appends inside the caller's transaction, so an action and its
event commit together or not at all. Appenders are serialised: SQLite's
``BEGIN IMMEDIATE`` already lets one writer in at a time, and on PostgreSQL
``record`` takes a transaction-scoped advisory lock before it reads the tail.

``verify`` recomputes the chain and names the first event that does not fit:
an edited field (its hash no longer matches), a removed event (the next one's
``prev_hash`` points at nothing before it), or a moved or re-inserted event
(its ``prev_hash`` is not its predecessor's hash). Removing events from the
*end* leaves a valid, shorter chain; keep ``head_hash`` somewhere else (a
ticket, a release note) to detect that. There are no update or delete
functions here, on purpose.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from modelyard.errors import InvalidInputError
from modelyard.project import Project
from modelyard.store import tables, utcnow

AUDIT_LOCK_KEY = 0x6D792D6175646974
"""The PostgreSQL advisory lock that serialises appenders ("my-audit" in ASCII)."""


@dataclass(frozen=True)
class AuditEvent:
    """One entry of the audit log."""

    seq: int
    ts: datetime
    actor: str
    action: str
    object_type: str
    object_id: str
    payload: dict[str, Any]
    prev_hash: str | None
    hash: str


@dataclass(frozen=True)
class AuditVerification:
    """The result of ``verify``: ``ok``, or the first bad event and why."""

    ok: bool
    events: int
    first_bad_seq: int | None = None
    reason: str | None = None
    head_hash: str | None = None


def record(
    session: Session,
    *,
    actor: str,
    action: str,
    object_type: str,
    object_id: str,
    payload: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event inside the caller's write transaction and return it."""
    content = _canonical_payload(payload or {}, action)
    if session.get_bind().dialect.name == "postgresql":
        session.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": AUDIT_LOCK_KEY})
    prev_hash = session.scalar(
        sa.select(tables.AuditEvent.hash).order_by(tables.AuditEvent.seq.desc()).limit(1)
    )
    ts = utcnow()
    row = tables.AuditEvent(
        ts=ts,
        actor=actor,
        action=action,
        object_type=object_type,
        object_id=object_id,
        payload=content,
        prev_hash=prev_hash,
        hash=event_hash(ts, actor, action, object_type, object_id, content, prev_hash),
    )
    session.add(row)
    session.flush()
    return _event(row)


def event_hash(
    ts: datetime,
    actor: str,
    action: str,
    object_type: str,
    object_id: str,
    payload: Any,
    prev_hash: str | None,
) -> str:
    """The sha256 (hex) that chains an event; ``seq`` is deliberately not part of it."""
    fields = {
        "ts": ts.astimezone(UTC).isoformat(),
        "actor": actor,
        "action": action,
        "object_type": object_type,
        "object_id": object_id,
        "payload": _numbers_as_read_back(payload),
        "prev_hash": prev_hash,
    }
    return hashlib.sha256(_canonical_json(fields).encode()).hexdigest()


def verify(project: Project) -> AuditVerification:
    """Recompute the whole chain, oldest first, and report the first event that breaks it."""
    previous: str | None = None
    count = 0
    with project.db.read() as session:
        rows = session.scalars(
            sa.select(tables.AuditEvent)
            .order_by(tables.AuditEvent.seq)
            .execution_options(yield_per=1000)
        )
        for row in rows:
            count += 1
            problem = _problem(row, previous)
            if problem is not None:
                return AuditVerification(False, count, row.seq, problem, previous)
            previous = row.hash
    return AuditVerification(True, count, head_hash=previous)


def events(
    project: Project,
    *,
    object_type: str | None = None,
    object_id: str | None = None,
    limit: int | None = None,
) -> list[AuditEvent]:
    """Events, newest first. ``object_id="loans"`` also matches ``loans@1``, ``loans@2``…"""
    query = sa.select(tables.AuditEvent).order_by(tables.AuditEvent.seq.desc())
    if object_type is not None:
        query = query.where(tables.AuditEvent.object_type == object_type)
    if object_id is not None:
        column = tables.AuditEvent.object_id
        matches = column == object_id
        if "@" not in object_id:
            matches = matches | column.startswith(f"{object_id}@", autoescape=True)
        query = query.where(matches)
    if limit is not None:
        query = query.limit(limit)
    with project.db.read() as session:
        return [_event(row) for row in session.scalars(query)]


def _problem(row: tables.AuditEvent, previous: str | None) -> str | None:
    """Why ``row`` does not follow an event whose hash is ``previous``, or None."""
    if row.prev_hash != previous:
        if previous is None:
            return (
                f"event {row.seq} is the oldest left but points at an earlier event "
                f"({_short(row.prev_hash)}): the events before it were removed"
            )
        return (
            f"event {row.seq} does not follow the event before it (expected prev_hash "
            f"{_short(previous)}, found {_short(row.prev_hash)}): an event was removed, "
            "moved or inserted here"
        )
    expected = event_hash(
        row.ts, row.actor, row.action, row.object_type, row.object_id, row.payload, row.prev_hash
    )
    if expected != row.hash:
        return (
            f"event {row.seq} ({row.action} on {row.object_id} by {row.actor}) was changed "
            "after it was written: its content no longer matches its hash"
        )
    return None


def _canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _numbers_as_read_back(value: Any) -> Any:
    """Whole floats as ints: PostgreSQL's JSONB returns 1e16 as an integer."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _numbers_as_read_back(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_numbers_as_read_back(item) for item in value]
    return value


def _canonical_payload(payload: dict[str, Any], action: str) -> dict[str, Any]:
    """The payload as it will read back from JSON, so the stored and hashed forms agree."""
    try:
        text = json.dumps(payload, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(
            f"The audit payload of '{action}' is not plain JSON ({exc}); "
            "pass strings, numbers, booleans, lists and dicts only."
        ) from exc
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def _short(digest: str | None) -> str:
    return "none" if digest is None else digest[:12]


def _event(row: tables.AuditEvent) -> AuditEvent:
    return AuditEvent(
        row.seq,
        row.ts,
        row.actor,
        row.action,
        row.object_type,
        row.object_id,
        row.payload or {},
        row.prev_hash,
        row.hash,
    )
