"""Stages, approvals and gated promotion, each change audited in its own transaction.

    none ──► staging ──► production ──► archived        (demote: one step back)

- ``approve`` / ``reject``: an approver or admin decides once per version;
  the model's author may not decide on it (four eyes).
- ``promote(…, "production")`` needs the ``promote`` permission (operator,
  admin), every stored gate passed (or an admin's ``override_reason`` when
  the spec's ``governance.allow_override`` is true), at least
  ``governance.approvals_required`` approvals from users other than the
  author, and no rejection. In one transaction it archives the previous
  production version, points ``champion`` at the new one and writes the
  audit events. ``promote(…, "staging")`` needs the ``register`` permission
  (scientist and above).
- ``demote`` / ``archive`` need a reason; leaving production needs ``promote``.
  If ``champion`` pointed at the version, the alias is removed (audited).
- ``move_alias`` moves any alias but ``champion``, which only ``promote`` moves.
- ``rollback`` puts back the version that was production before the current
  one (the newest ``model.archive`` event "replaced by" it), archiving the
  current one and moving ``champion`` back, in one transaction.

Promotion to production is a compare-and-swap: the caller's view of the
current champion (``expected_current``, by default read when ``promote`` is
called, before any lock) must still hold inside the locked write
transaction. When another promotion won meanwhile, the loser gets a
``ConflictError`` naming both versions, and its attempt is audited as a
refusal, so two concurrent promotions leave exactly one winner.

A refused approval, promotion or alias move is itself audited (action
``….refused``, with the reason) before the error reaches the caller.
"""

from __future__ import annotations

import enum
import string
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from modelyard.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
)
from modelyard.project import Project
from modelyard.registry.audit import record
from modelyard.registry.users import get_or_create_user, require
from modelyard.registry.versions import (
    ModelVersion,
    check_alias,
    point_alias,
    resolve,
    set_alias,
    version_info,
    version_row,
)
from modelyard.store import lock_for_update, new_id, tables

CHAMPION = "champion"
PROMOTABLE = ("staging", "production")


class _Unset(enum.Enum):
    UNSET = "unset"


UNSET = _Unset.UNSET
"""``promote(expected_current=UNSET)``: read the current champion when called."""


def _between_read_and_write() -> None:
    """Called after ``promote`` read the current champion and before it locks (a test hook)."""


@dataclass(frozen=True)
class Decision:
    """One user's approval or rejection of one model version."""

    ref: str
    user: str
    decision: str
    comment: str | None
    created_at: datetime


def approve(project: Project, ref: str, *, user: str, comment: str | None = None) -> Decision:
    """Approve ``ref`` for production on behalf of ``user`` (an approver, not its author)."""
    return _decide(project, ref, user=user, decision="approve", comment=comment)


def reject(project: Project, ref: str, *, user: str, comment: str) -> Decision:
    """Reject ``ref``; a rejected version cannot reach production. ``comment`` says why."""
    if _blank(comment):
        raise InvalidInputError(f"Rejecting '{ref}' needs a comment saying why.")
    return _decide(project, ref, user=user, decision="reject", comment=comment)


def decisions(project: Project, ref: str) -> list[Decision]:
    """Every approval and rejection of ``ref``, oldest first."""
    version = resolve(project, ref)
    with project.db.read() as session:
        return _decisions(session, version)


def promote(
    project: Project,
    ref: str,
    stage: str = "production",
    *,
    user: str,
    override_reason: str | None = None,
    expected_current: int | _Unset | None = UNSET,
) -> ModelVersion:
    """Move ``ref`` to ``stage`` (staging or production) after checking every rule.

    ``expected_current`` is the champion version number the caller saw (None:
    no champion); promotion to production fails with ``ConflictError`` if the
    champion changed since. By default it is read now, outside the write
    transaction.
    """
    if stage not in PROMOTABLE:
        raise InvalidInputError(
            f"Cannot promote to stage {stage!r}: use 'staging' or 'production' "
            "(use archive() or demote() to move a version back)."
        )
    version = resolve(project, ref)
    if isinstance(expected_current, _Unset):
        with project.db.read() as session:
            expected_current = _champion_version(session, version)
    _between_read_and_write()
    with _refusals_audited(project, user, "model.promote", version.ref):
        require(project, user, "promote" if stage == "production" else "register")
        with project.db.write() as session:
            row = _locked_version(session, version)
            if stage == "production":
                _check_unchanged(session, version, expected_current)
            if row.stage == stage:
                raise ConflictError(f"Model {_label(version)} is already in {stage}.")
            if row.stage == "production":
                raise ConflictError(
                    f"Model {_label(version)} is in production; take it out with "
                    f"`modelyard models promote {version.ref} --stage staging --reason …` "
                    "(a demotion, which needs a reason)."
                )
            if stage == "staging":
                return _set_stage(session, project, version, row, "staging", user, {})
            override = _check_gates(project, version, row, user, override_reason)
            approvers = _check_approvals(session, project, version, row)
            return _to_production(session, project, version, row, user, approvers, override)


def demote(project: Project, ref: str, *, user: str, reason: str) -> ModelVersion:
    """Move ``ref`` one stage back (production → staging → none)."""
    version = resolve(project, ref)
    back = {"production": "staging", "staging": "none"}
    if version.stage not in back:
        raise ConflictError(
            f"Model {_label(version)} is in stage '{version.stage}' and cannot be demoted; "
            "only staging and production versions can."
        )
    return _leave(project, version, back[version.stage], user=user, reason=reason)


def archive(project: Project, ref: str, *, user: str, reason: str) -> ModelVersion:
    """Move ``ref`` to archived (from any other stage)."""
    version = resolve(project, ref)
    if version.stage == "archived":
        raise ConflictError(f"Model {_label(version)} is already archived.")
    return _leave(project, version, "archived", user=user, reason=reason)


def set_stage(
    project: Project,
    ref: str,
    stage: str,
    *,
    user: str,
    reason: str | None = None,
    override_reason: str | None = None,
) -> ModelVersion:
    """Move ``ref`` to any stage: ``archive``, ``demote`` or ``promote``, whichever applies."""
    current = resolve(project, ref).stage
    backwards = stage == "archived" or (stage, current) in {
        ("staging", "production"),
        ("none", "staging"),
        ("none", "production"),
    }
    if not backwards:
        return promote(project, ref, stage, user=user, override_reason=override_reason)
    if reason is None:
        raise InvalidInputError(
            f"Moving '{ref}' from {current} to {stage} needs a reason (--reason)."
        )
    if stage == "archived":
        return archive(project, ref, user=user, reason=reason)
    return _leave(project, resolve(project, ref), stage, user=user, reason=reason)


def move_alias(project: Project, name: str, alias: str, version: int, *, user: str) -> ModelVersion:
    """Point ``alias`` at ``name@version`` for ``user`` (``alias`` permission); not champion."""
    check_alias(alias)
    target = resolve(project, f"{name}@{version}")
    with _refusals_audited(project, user, "alias.move", f"{name}@{alias}"):
        require(project, user, "alias")
        if alias == CHAMPION:
            raise ConflictError(
                f"The alias '{CHAMPION}' follows production and moves only by promotion. "
                f"Run `modelyard models promote {target.ref}` (gates and approvals apply)."
            )
        return set_alias(project, name, alias, version, user=user)


def rollback(project: Project, name: str, *, user: str, reason: str) -> ModelVersion:
    """Put back the version that was production before the current one (``promote`` permission).

    The previous version is the one archived when the current champion was
    promoted (its ``model.archive`` event says "replaced by NAME@V"). In one
    transaction the current version is archived, the previous one returns to
    production and ``champion`` moves back; audited as ``model.rollback``.
    Gates and approvals are not checked again: the version passed them once.
    """
    if _blank(reason):
        raise InvalidInputError(f"Rolling back '{name}' needs a reason (--reason).")
    current = resolve(project, f"{name}@{CHAMPION}") if _has_champion(project, name) else None
    with _refusals_audited(project, user, "model.rollback", f"{name}@{CHAMPION}"):
        require(project, user, "promote")
        if current is None:
            raise ConflictError(
                f"Model '{name}' has no version in production, so there is nothing to roll back."
            )
        with project.db.write() as session:
            row = _locked_version(session, current)
            _check_unchanged(session, current, current.version)
            target = _replaced_by(session, project, current)
            old = version_row(session, project, name, str(target))
            if old.stage != "archived":
                raise ConflictError(
                    f"Cannot roll back '{name}' to v{target}: it is in stage '{old.stage}' now, "
                    "not archived. Promote the version you want instead."
                )
            row.stage = "archived"
            _audit(session, project, user, "model.archive", current.ref,
                   from_stage="production", reason=f"rolled back: {reason}")  # fmt: skip
            old.stage = "production"
            session.flush()
            point_alias(session, row.model_id, CHAMPION, old.id, actor=user, project=project)
            _audit(session, project, user, "model.rollback", f"{name}@{target}",
                   from_version=current.version, to_version=target, reason=reason)  # fmt: skip
            return version_info(session, name, old)


# ---------------------------------------------------------------------- decisions


def _decide(
    project: Project, ref: str, *, user: str, decision: str, comment: str | None
) -> Decision:
    version = resolve(project, ref)
    with _refusals_audited(project, user, f"model.{decision}", version.ref):
        require(project, user, "approve")
        account = get_or_create_user(project, user)
        with project.db.write() as session:
            row = _locked_version(session, version)
            if row.created_by == user:
                raise PermissionDeniedError(
                    f"User '{user}' registered model {_label(version)} and so cannot "
                    f"{decision} it (four eyes). Ask another approver.",
                    details={"user": user, "ref": version.ref, "rule": "four_eyes"},
                )
            _check_undecided(session, version, account.id or "", user)
            session.add(
                tables.Approval(
                    id=new_id(),
                    model_version_id=row.id,
                    user_id=account.id,
                    decision=decision,
                    comment=comment,
                )
            )
            session.flush()
            _audit(session, project, user, f"model.{decision}", version.ref, comment=comment)
            return _decisions(session, version)[-1]


def _check_undecided(session: Session, version: ModelVersion, user_id: str, user: str) -> None:
    earlier = session.scalar(
        select(tables.Approval).where(
            tables.Approval.model_version_id == version.id, tables.Approval.user_id == user_id
        )
    )
    if earlier is not None:
        raise ConflictError(
            f"User '{user}' already decided '{earlier.decision}' on model {_label(version)} "
            f"at {earlier.created_at:%Y-%m-%d %H:%M} UTC; a user decides once per version."
        )


def _decisions(session: Session, version: ModelVersion) -> list[Decision]:
    rows = session.execute(
        select(tables.Approval, tables.User.name)
        .join(tables.User, tables.User.id == tables.Approval.user_id)
        .where(tables.Approval.model_version_id == version.id)
        .order_by(tables.Approval.created_at, tables.Approval.id)
    ).all()
    return [Decision(version.ref, n, a.decision, a.comment, a.created_at) for a, n in rows]


# ---------------------------------------------------------------------- promotion rules


def _check_gates(
    project: Project,
    version: ModelVersion,
    row: tables.ModelVersion,
    user: str,
    override_reason: str | None,
) -> dict[str, Any] | None:
    """None if every gate passed, the override record if an admin overrides, else an error."""
    gates: list[dict[str, Any]] = list(row.gates or [])
    failed = [g for g in gates if not g.get("passed")]
    if not gates and any(g.threshold is not None for g in project.spec.metric_goals("model")):
        failed = [{"name": "evaluation", "passed": False, "value": None, "threshold": None}]
    if not failed:
        return None
    if override_reason is None or _blank(override_reason):
        raise ConflictError(
            f"Model {_label(version)} cannot be promoted: {_describe(failed)}. "
            "Retrain or ask an admin for an override.",
            details={"ref": version.ref, "failed_gates": failed},
        )
    if not project.spec.governance.allow_override:
        raise PermissionDeniedError(
            f"Model {_label(version)} failed {_describe(failed)}, and the spec sets "
            "governance.allow_override: false, so no one may override its gates. Retrain it."
        )
    try:
        require(project, user, "admin")
    except PermissionDeniedError as exc:
        raise PermissionDeniedError(
            f"Only an admin may override failed gates ({_describe(failed)}) of model "
            f"{_label(version)}; {exc.message}",
            details=exc.details,
        ) from exc
    return {"reason": override_reason, "failed_gates": failed}


def _describe(failed: list[dict[str, Any]]) -> str:
    if failed[0]["name"] == "evaluation" and failed[0]["threshold"] is None:
        return "it has no gate results (run `modelyard evaluate` first)"
    return ", ".join(f"gate '{_gate_label(g)}' failed ({_value(g.get('value'))})" for g in failed)


def _gate_label(gate: dict[str, Any]) -> str:
    if gate.get("threshold") is None:
        return str(gate["name"])
    sign = "≤" if gate.get("direction") == "min" else "≥"
    return f"{gate['name']} {sign} {gate['threshold']:g}"


def _value(value: Any) -> str:
    return "not measured" if value is None else f"{value:.4g}"


def _check_approvals(
    session: Session, project: Project, version: ModelVersion, row: tables.ModelVersion
) -> list[str]:
    """The users whose approvals count, or an error naming what is missing."""
    found = [d for d in _decisions(session, version) if d.user != row.created_by]
    rejected = [d for d in found if d.decision == "reject"]
    if rejected:
        first = rejected[0]
        raise ConflictError(
            f"Model {_label(version)} cannot be promoted: '{first.user}' rejected it "
            f"({first.comment}). Address the rejection in a new version."
        )
    approvers = [d.user for d in found if d.decision == "approve"]
    required = project.spec.governance.approvals_required
    if len(approvers) < required:
        raise ConflictError(
            f"Model {_label(version)} cannot be promoted: it has {len(approvers)} of the "
            f"{required} approvals the spec requires (from users other than its author "
            f"'{row.created_by}'). Ask an approver to run "
            f"`modelyard models approve {version.ref}`.",
            details={"ref": version.ref, "approvals": approvers, "required": required},
        )
    return approvers


# ---------------------------------------------------------------------- stage changes


def _to_production(
    session: Session,
    project: Project,
    version: ModelVersion,
    row: tables.ModelVersion,
    user: str,
    approvers: list[str],
    override: dict[str, Any] | None,
) -> ModelVersion:
    previous = session.scalars(
        select(tables.ModelVersion).where(
            tables.ModelVersion.model_id == row.model_id,
            tables.ModelVersion.stage == "production",
            tables.ModelVersion.id != row.id,
        )
    ).all()
    for old in previous:
        old.stage = "archived"
        _audit(session, project, user, "model.archive", f"{version.name}@{old.version}",
               from_stage="production", reason=f"replaced by {version.ref}")  # fmt: skip
    if override is not None:
        _audit(session, project, user, "model.override", version.ref, **override)
    payload = {"approvals": approvers, "override": override is not None}
    _set_stage(session, project, version, row, "production", user, payload)
    point_alias(session, row.model_id, CHAMPION, row.id, actor=user, project=project)
    return _refreshed(session, version, row)


def _set_stage(
    session: Session,
    project: Project,
    version: ModelVersion,
    row: tables.ModelVersion,
    stage: str,
    user: str,
    payload: dict[str, Any],
) -> ModelVersion:
    before = row.stage
    row.stage = stage
    session.flush()
    action = "model.promote" if stage in PROMOTABLE else f"model.{stage}"
    _audit(session, project, user, action, version.ref, from_stage=before, to_stage=stage,
           **payload)  # fmt: skip
    return _refreshed(session, version, row)


def _leave(
    project: Project, version: ModelVersion, stage: str, *, user: str, reason: str
) -> ModelVersion:
    if _blank(reason):
        raise InvalidInputError(f"Moving '{version.ref}' to {stage} needs a reason.")
    with _refusals_audited(project, user, f"model.{stage}", version.ref):
        require(project, user, "promote" if version.stage == "production" else "register")
        with project.db.write() as session:
            row = _locked_version(session, version)
            champion = session.get(tables.ModelAlias, (row.model_id, CHAMPION))
            if champion is not None and champion.model_version_id == row.id:
                session.delete(champion)
                _audit(session, project, user, "alias.remove", f"{version.name}@{CHAMPION}",
                       from_version=version.version, reason=reason)  # fmt: skip
            return _set_stage(session, project, version, row, stage, user, {"reason": reason})


def _champion_version(session: Session, version: ModelVersion) -> int | None:
    """The version number ``champion`` of ``version``'s model points at, or None."""
    model_id = session.get_one(tables.ModelVersion, version.id).model_id
    alias = session.get(tables.ModelAlias, (model_id, CHAMPION), populate_existing=True)
    return (
        None
        if alias is None
        else session.get_one(tables.ModelVersion, alias.model_version_id).version
    )


def _has_champion(project: Project, name: str) -> bool:
    try:
        resolve(project, f"{name}@{CHAMPION}")
    except NotFoundError:
        resolve(project, name)  # an unknown model is NotFoundError, not "nothing to roll back"
        return False
    return True


def _replaced_by(session: Session, project: Project, current: ModelVersion) -> int:
    """The version archived when ``current`` was promoted, per the audit log."""
    found = session.scalars(
        select(tables.AuditEvent)
        .where(
            tables.AuditEvent.action == "model.archive",
            tables.AuditEvent.object_id.startswith(f"{current.name}@", autoescape=True),
        )
        .order_by(tables.AuditEvent.seq.desc())
    )
    for event in found:
        payload = event.payload or {}
        if payload.get("project") == project.name and payload.get("reason") == (
            f"replaced by {current.ref}"
        ):
            return int(event.object_id.rpartition("@")[2])
    raise ConflictError(
        f"Cannot roll back '{current.name}': {current.ref} did not replace an earlier "
        "production version, so there is nothing to roll back to."
    )


def _check_unchanged(session: Session, version: ModelVersion, expected: int | None) -> None:
    """Refuse when the champion is no longer the one the caller saw (call under the lock)."""
    current = _champion_version(session, version)
    if current == expected:
        return
    seen = "no champion" if expected is None else f"{version.name}@{expected} as champion"
    what = (
        f"the champion {version.name}@{expected} was taken out of production meanwhile"
        if current is None
        else f"{version.name}@{current} was promoted meanwhile"
    )
    raise ConflictError(
        f"Cannot promote {version.ref}: {what} (you saw {seen}); re-check and retry.",
        details={"ref": version.ref, "expected_current": expected, "current": current},
    )


# ---------------------------------------------------------------------- helpers


def _locked_version(session: Session, version: ModelVersion) -> tables.ModelVersion:
    """Lock the model (so stage changes of its versions queue) and reload the version."""
    row = session.get_one(tables.ModelVersion, version.id)
    lock_for_update(session, session.get_one(tables.RegisteredModel, row.model_id))
    return session.get_one(tables.ModelVersion, version.id, populate_existing=True)


def _refreshed(session: Session, version: ModelVersion, row: tables.ModelVersion) -> ModelVersion:
    session.flush()
    return version_info(session, version.name, row)


def _label(version: ModelVersion) -> str:
    return f"'{version.name}' v{version.version}"


def _audit(
    session: Session, project: Project, user: str, action: str, object_id: str, **payload: Any
) -> None:
    object_type = "model_alias" if action.startswith("alias.") else "model_version"
    record(session, actor=user, action=action, object_type=object_type, object_id=object_id,
           payload={"project": project.name, **payload})  # fmt: skip


@contextmanager
def _refusals_audited(project: Project, user: str, action: str, object_id: str) -> Iterator[None]:
    """Record ``<action>.refused`` (in its own transaction) when a rule refuses the action."""
    try:
        yield
    except (PermissionDeniedError, ConflictError) as exc:
        with project.db.write() as session:
            _audit(session, project, user, f"{action}.refused", object_id, reason=exc.message)
        raise


def _blank(text: str) -> bool:
    """Only ASCII white space: the same rule the management API's schema states."""
    return not text.strip(string.whitespace)
