"""Approvals, four eyes, gated promotion, overrides and atomic stage changes, on both backends."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from modelyard.data.demo import DEMO_SPEC
from modelyard.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
)
from modelyard.project import Project
from modelyard.registry import promotion
from modelyard.registry.audit import events, verify
from modelyard.registry.promotion import (
    approve,
    archive,
    decisions,
    demote,
    move_alias,
    promote,
    reject,
    rollback,
    set_stage,
)
from modelyard.registry.versions import ModelVersion, register_model, resolve
from modelyard.store import tables

GOVERNANCE = """governance:
  approvals_required: 2
  allow_override: {override}
  roles: {{ana: scientist, bob: approver, carol: approver, dave: approver,
          olga: operator, root: admin, vic: viewer}}
"""
PASSED = [
    {"name": "roc_auc", "direction": "max", "threshold": 0.7, "value": 0.81, "passed": True},
    {"name": "recall", "direction": "max", "threshold": 0.8, "value": 0.83, "passed": True},
]
FAILED = [
    PASSED[0],
    {"name": "recall", "direction": "max", "threshold": 0.8, "value": 0.74, "passed": False},
]


def _open(folder: Path, *, override: bool = True) -> Project:
    text = DEMO_SPEC.replace("governance:\n  approvals_required: 1\n", "")
    (folder / "modelyard.yaml").write_text(text + GOVERNANCE.format(override=str(override).lower()))
    return Project.open(folder / "modelyard.yaml")


@pytest.fixture
def project(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Project]:
    monkeypatch.setenv("MODELYARD_DB_URL", db_url)
    monkeypatch.delenv("MODELYARD_ARTIFACTS", raising=False)
    opened = _open(tmp_path)
    yield opened
    opened.close()


def _register(project: Project, gates: list[dict[str, Any]] = PASSED) -> ModelVersion:
    return register_model(
        project,
        "loans",
        digest="a" * 64,
        flavor="lightgbm",
        run_id=None,
        signature={},
        metrics={},
        gates=gates,
        created_by="ana",
    )


def _approved(project: Project, gates: list[dict[str, Any]] = PASSED) -> ModelVersion:
    version = _register(project, gates)
    approve(project, version.ref, user="bob")
    approve(project, version.ref, user="carol", comment="looks fine")
    return version


def _actions(project: Project) -> list[str]:
    return [e.action for e in reversed(events(project))]


def test_the_author_cannot_approve_and_the_refusal_is_audited(project: Project) -> None:
    version = _register(project)
    with project.db.write() as session:  # make the author an approver in the users table
        session.add(tables.User(name="ana", role="approver"))
    with pytest.raises(PermissionDeniedError, match="four eyes") as refused:
        approve(project, version.ref, user="ana")
    assert refused.value.http_status == 403
    assert decisions(project, version.ref) == []
    last = events(project, limit=1)[0]
    assert (last.action, last.actor, last.object_id) == ("model.approve.refused", "ana", "loans@1")
    assert "four eyes" in last.payload["reason"]


def test_only_approvers_decide_and_only_once(project: Project) -> None:
    version = _register(project)
    for user in ("olga", "vic", "stranger"):
        with pytest.raises(PermissionDeniedError, match="approve"):
            approve(project, version.ref, user=user)
    approve(project, version.ref, user="bob")
    with pytest.raises(ConflictError, match="already decided 'approve'"):
        reject(project, version.ref, user="bob", comment="changed my mind")
    with pytest.raises(InvalidInputError, match="comment"):
        reject(project, version.ref, user="carol", comment=" ")
    assert [(d.user, d.decision) for d in decisions(project, version.ref)] == [("bob", "approve")]


def test_promotion_needs_enough_approvals(project: Project) -> None:
    version = _register(project)
    approve(project, version.ref, user="bob")
    with pytest.raises(ConflictError, match="1 of the 2 approvals") as refused:
        promote(project, version.ref, user="olga")
    assert "modelyard models approve loans@1" in refused.value.message
    assert resolve(project, "loans@1").stage == "none"
    approve(project, version.ref, user="carol")
    promoted = promote(project, version.ref, user="olga")
    assert promoted.stage == "production" and promoted.aliases == ("champion",)
    assert resolve(project, "loans@champion").version == 1


def test_a_rejection_blocks_promotion(project: Project) -> None:
    version = _approved(project)
    reject(project, version.ref, user="dave", comment="leaks the label")
    with pytest.raises(ConflictError, match="'dave' rejected it \\(leaks the label\\)"):
        promote(project, version.ref, user="olga")


def test_only_operators_and_admins_promote_to_production(project: Project) -> None:
    version = _approved(project)
    for user in ("ana", "bob", "vic"):
        with pytest.raises(PermissionDeniedError, match="promote"):
            promote(project, version.ref, user=user)
    assert promote(project, version.ref, user="root").stage == "production"


def test_staging_needs_a_scientist_and_no_approvals(project: Project) -> None:
    version = _register(project, FAILED)
    with pytest.raises(PermissionDeniedError):
        promote(project, version.ref, "staging", user="vic")
    assert promote(project, version.ref, "staging", user="ana").stage == "staging"
    with pytest.raises(InvalidInputError, match="'staging' or 'production'"):
        promote(project, version.ref, "archived", user="root")


def test_a_failed_gate_is_named_with_value_and_threshold(project: Project) -> None:
    version = _approved(project, FAILED)
    with pytest.raises(ConflictError) as refused:
        promote(project, version.ref, user="olga")
    assert refused.value.message == (
        "Model 'loans' v1 cannot be promoted: gate 'recall ≥ 0.8' failed (0.74). "
        "Retrain or ask an admin for an override."
    )
    assert resolve(project, version.ref).stage == "none"
    assert events(project, limit=1)[0].action == "model.promote.refused"


def test_a_version_without_gate_results_is_refused(project: Project) -> None:
    version = _approved(project, [])
    with pytest.raises(ConflictError, match="no gate results"):
        promote(project, version.ref, user="olga")


def test_an_admin_override_works_and_is_audited(project: Project) -> None:
    version = _approved(project, FAILED)
    with pytest.raises(PermissionDeniedError, match="Only an admin may override"):
        promote(project, version.ref, user="olga", override_reason="urgent fix")
    assert resolve(project, version.ref).stage == "none"
    promoted = promote(project, version.ref, user="root", override_reason="regulator deadline")
    assert promoted.stage == "production"
    override = next(e for e in events(project) if e.action == "model.override")
    assert override.actor == "root" and override.payload["reason"] == "regulator deadline"
    assert [g["name"] for g in override.payload["failed_gates"]] == ["recall"]
    promoted_event = next(e for e in events(project) if e.action == "model.promote")
    assert promoted_event.payload["override"] is True
    assert promoted_event.payload["approvals"] == ["bob", "carol"]


def test_override_is_refused_when_the_spec_forbids_it(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELYARD_DB_URL", db_url)
    strict = _open(tmp_path, override=False)
    try:
        version = _approved(strict, FAILED)
        with pytest.raises(PermissionDeniedError, match="allow_override: false"):
            promote(strict, version.ref, user="root", override_reason="please")
    finally:
        strict.close()


def test_promotion_archives_the_previous_champion(project: Project) -> None:
    first = _approved(project)
    promote(project, first.ref, user="olga")
    second = _approved(project)
    promote(project, second.ref, user="olga")
    assert resolve(project, "loans@1").stage == "archived"
    assert resolve(project, "loans@1").aliases == ()
    assert resolve(project, "loans@champion").ref == "loans@2"
    archived = next(e for e in events(project) if e.action == "model.archive")
    assert archived.payload["reason"] == "replaced by loans@2"
    moved = events(project, object_type="model_alias", limit=1)[0]
    assert (moved.payload["from_version"], moved.payload["to_version"]) == (1, 2)


def test_a_failure_midway_changes_nothing(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _approved(project)
    promote(project, first.ref, user="olga")
    second = _approved(project)
    before = _actions(project)

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(promotion, "point_alias", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        promote(project, second.ref, user="olga")
    assert resolve(project, "loans@1").stage == "production"
    assert resolve(project, "loans@2").stage == "none"
    assert resolve(project, "loans@champion").version == 1
    assert _actions(project) == before


def test_demote_and_archive_need_reasons_and_drop_the_champion(project: Project) -> None:
    version = _approved(project)
    promote(project, version.ref, user="olga")
    with pytest.raises(PermissionDeniedError):
        demote(project, version.ref, user="ana", reason="bad")
    with pytest.raises(InvalidInputError, match="reason"):
        set_stage(project, version.ref, "staging", user="olga")
    demoted = set_stage(project, version.ref, "staging", user="olga", reason="drift alarm")
    assert (demoted.stage, demoted.aliases) == ("staging", ())
    removed = next(e for e in events(project) if e.action == "alias.remove")
    assert removed.payload["reason"] == "drift alarm"
    assert archive(project, version.ref, user="ana", reason="superseded").stage == "archived"
    with pytest.raises(ConflictError, match="already archived"):
        archive(project, version.ref, user="olga", reason="again")


def test_aliases_move_for_operators_but_champion_only_by_promotion(project: Project) -> None:
    _register(project)
    _register(project)
    assert move_alias(project, "loans", "challenger", 2, user="olga").aliases == ("challenger",)
    with pytest.raises(PermissionDeniedError):
        move_alias(project, "loans", "challenger", 1, user="ana")
    with pytest.raises(ConflictError, match="models promote loans@2"):
        move_alias(project, "loans", "champion", 2, user="root")
    assert [e.action for e in events(project, object_type="model_alias")][:2] == [
        "alias.move.refused",
        "alias.move.refused",
    ]


def test_the_chain_holds_after_governance_and_breaks_when_tampered(project: Project) -> None:
    first = _approved(project, FAILED)
    promote(project, first.ref, user="root", override_reason="deadline")
    second = _approved(project)
    with pytest.raises(ConflictError):  # refusals are part of the chain too
        reject(project, second.ref, user="bob", comment="second thoughts")
    promote(project, second.ref, user="olga")
    result = verify(project)
    assert result.ok and result.events == len(events(project)) >= 12
    override = next(e for e in events(project) if e.action == "model.override")
    with project.db.write() as session:
        session.execute(
            sa.update(tables.AuditEvent)
            .where(tables.AuditEvent.seq == override.seq)
            .values(payload={**override.payload, "reason": "approved by the board"})
        )
    broken = verify(project)
    assert not broken.ok and broken.first_bad_seq == override.seq


def test_concurrent_promotions_have_one_winner_and_both_are_audited(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = _approved(project), _approved(project)
    both_read = threading.Barrier(2, timeout=30)
    # Each promotion reads the current champion (none), then waits for the other to have
    # read it too, so both race for the write with the same, soon stale, view.
    monkeypatch.setattr(promotion, "_between_read_and_write", both_read.wait)
    outcomes: dict[str, ModelVersion | Exception] = {}

    def attempt(ref: str) -> None:
        try:
            outcomes[ref] = promote(project, ref, user="olga")
        except Exception as exc:  # collected and checked below
            outcomes[ref] = exc

    threads = [threading.Thread(target=attempt, args=(v.ref,)) for v in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    won = [ref for ref, out in outcomes.items() if isinstance(out, ModelVersion)]
    lost = [ref for ref, out in outcomes.items() if isinstance(out, ConflictError)]
    assert len(won) == 1 and len(lost) == 1, outcomes
    refused = outcomes[lost[0]]
    assert isinstance(refused, ConflictError)
    assert refused.message == (
        f"Cannot promote {lost[0]}: {won[0]} was promoted meanwhile (you saw no champion); "
        "re-check and retry."
    )
    assert resolve(project, "loans@champion").ref == won[0]
    assert resolve(project, lost[0]).stage == "none"
    promotions = [(e.action, e.object_id) for e in events(project) if "promote" in e.action]
    assert sorted(promotions) == [("model.promote", won[0]), ("model.promote.refused", lost[0])]
    assert verify(project).ok


def test_a_stale_expected_champion_is_refused(project: Project) -> None:
    first, second = _approved(project), _approved(project)
    promote(project, first.ref, user="olga", expected_current=None)
    with pytest.raises(ConflictError, match="loans@1 was promoted meanwhile"):
        promote(project, second.ref, user="olga", expected_current=None)
    assert promote(project, second.ref, user="olga", expected_current=1).stage == "production"


def test_rollback_restores_the_previous_champion_in_one_audited_step(project: Project) -> None:
    first, second = _approved(project), _approved(project)
    promote(project, first.ref, user="olga")
    with pytest.raises(ConflictError, match="nothing to roll back to"):
        rollback(project, "loans", user="olga", reason="bad")
    promote(project, second.ref, user="olga")
    with pytest.raises(PermissionDeniedError, match="promote"):
        rollback(project, "loans", user="bob", reason="drift")
    with pytest.raises(InvalidInputError, match="reason"):
        rollback(project, "loans", user="olga", reason=" ")
    restored = rollback(project, "loans", user="olga", reason="latency regression")
    assert (restored.ref, restored.stage, restored.aliases) == (
        "loans@1",
        "production",
        ("champion",),
    )
    assert resolve(project, second.ref).stage == "archived"
    event = events(project, limit=1)[0]
    assert (event.action, event.actor, event.object_id) == ("model.rollback", "olga", "loans@1")
    assert (event.payload["from_version"], event.payload["to_version"]) == (2, 1)
    assert event.payload["reason"] == "latency regression"
    refusals = [e.action for e in events(project) if e.action == "model.rollback.refused"]
    assert len(refusals) == 2
    with pytest.raises(ConflictError, match="nothing to roll back to"):  # v1 replaced nothing
        rollback(project, "loans", user="olga", reason="again")
    assert verify(project).ok


def test_rollback_without_production_says_so(project: Project) -> None:
    _approved(project)
    with pytest.raises(ConflictError, match="no version in production"):
        rollback(project, "loans", user="olga", reason="oops")
    with pytest.raises(NotFoundError):
        rollback(project, "nosuch", user="olga", reason="oops")


def test_a_failed_rollback_changes_nothing(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = _approved(project), _approved(project)
    promote(project, first.ref, user="olga")
    promote(project, second.ref, user="olga")
    before = _actions(project)

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(promotion, "point_alias", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        rollback(project, "loans", user="olga", reason="drift")
    assert resolve(project, "loans@champion").ref == "loans@2"
    assert resolve(project, "loans@1").stage == "archived"
    assert _actions(project) == before
