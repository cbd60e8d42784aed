"""``modelyard models approve/reject/promote/alias/lineage`` and ``modelyard audit verify/log``."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner, Result

from modelyard.cli import app, credentials
from modelyard.data.demo import DEMO_SPEC
from modelyard.errors import AuthenticationError, ConflictError, PermissionDeniedError
from modelyard.project import Project
from modelyard.registry.audit import events
from modelyard.registry.users import create_token, create_user
from modelyard.registry.versions import register_model
from modelyard.store import tables

runner = CliRunner()
ROLES = "  roles: {ana: scientist, bob: approver, olga: operator, root: admin}\n"
GATES = [{"name": "recall", "direction": "max", "threshold": 0.8, "value": 0.74, "passed": False}]


@pytest.fixture
def spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project holding loans@1, registered by ana, with a failed recall gate."""
    monkeypatch.delenv("MODELYARD_DB_URL", raising=False)
    monkeypatch.delenv("MODELYARD_ARTIFACTS", raising=False)
    monkeypatch.delenv("MODELYARD_USER", raising=False)
    monkeypatch.delenv("MODELYARD_TOKEN", raising=False)
    monkeypatch.delenv("MODELYARD_URL", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))  # no real credentials
    path = tmp_path / "modelyard.yaml"
    path.write_text(DEMO_SPEC + ROLES)
    project = Project.open(path)
    try:
        register_model(project, "loans", digest="a" * 64, flavor="lightgbm", run_id=None,
                       signature={}, metrics={}, gates=GATES, created_by="ana")  # fmt: skip
    finally:
        project.close()
    return path


def _run(spec: Path, *args: str, user: str | None = None) -> Result:
    env = {"MODELYARD_USER": user} if user else {}
    return runner.invoke(app, ["--spec", str(spec), *args], env=env)


def test_approve_then_promote_with_override(spec: Path) -> None:
    approved = _run(spec, "models", "approve", "loans@1", "--comment", "ok", user="bob")
    assert approved.exit_code == 0, approved.output
    assert "bob approved loans@1" in approved.output
    refused = _run(spec, "models", "promote", "loans@1", user="olga")
    assert isinstance(refused.exception, ConflictError)
    assert "gate 'recall ≥ 0.8' failed (0.74)" in refused.exception.message
    promoted = _run(
        spec, "models", "promote", "loans@1", "--override", "deadline", "--user", "root"
    )
    assert promoted.exit_code == 0, promoted.output
    assert "loans@1 is now in production (aliases: champion)" in promoted.output
    log = _run(spec, "audit", "log", "--object", "loans")
    assert log.exit_code == 0, log.output
    for action in ("model.override", "model.promote", "alias.move", "model.approve"):
        assert action in log.output


def test_author_cannot_approve_and_user_comes_from_the_environment(spec: Path) -> None:
    project = Project.open(spec)
    with project.db.write() as session:
        session.add(tables.User(name="ana", role="approver"))
    project.close()
    done = _run(spec, "models", "approve", "loans@1", user="ana")
    assert isinstance(done.exception, PermissionDeniedError)
    assert "four eyes" in done.exception.message


def test_reject_needs_a_comment(spec: Path) -> None:
    assert _run(spec, "models", "reject", "loans@1", user="bob").exit_code == 2
    done = _run(spec, "models", "reject", "loans@1", "--comment", "leaky", user="bob")
    assert done.exit_code == 0 and "rejected loans@1: leaky" in done.output


def test_alias_and_lineage(spec: Path) -> None:
    done = _run(spec, "models", "alias", "loans", "challenger", "1", user="olga")
    assert done.exit_code == 0, done.output
    assert "loans@challenger → loans@1" in done.output
    lineage = _run(spec, "models", "lineage", "loans@challenger")
    assert lineage.exit_code == 0, lineage.output
    assert "no run recorded" in lineage.output and "loans@1" in lineage.output


def test_archive_via_promote_needs_a_reason(spec: Path) -> None:
    missing = _run(spec, "models", "promote", "loans@1", "--stage", "archived", user="ana")
    assert missing.exception is not None and "reason" in str(missing.exception)
    done = _run(spec, "models", "promote", "loans@1", "--stage", "archived", "--reason", "old",
                user="ana")  # fmt: skip
    assert done.exit_code == 0 and "now in archived" in done.output


def test_audit_verify_exits_1_naming_the_tampered_event(spec: Path) -> None:
    _run(spec, "models", "approve", "loans@1", user="bob")
    ok = _run(spec, "audit", "verify")
    assert ok.exit_code == 0 and "intact" in ok.output
    project = Project.open(spec)
    approval = next(e for e in events(project) if e.action == "model.approve")
    with project.db.write() as session:
        session.execute(sa.update(tables.AuditEvent).where(tables.AuditEvent.seq == approval.seq)
                        .values(actor="mallory"))  # fmt: skip
    project.close()
    broken = _run(spec, "audit", "verify")
    assert broken.exit_code == 1
    assert f"broken at event {approval.seq}" in broken.output


def test_rollback_puts_the_previous_champion_back(spec: Path) -> None:
    assert _run(spec, "models", "approve", "loans@1", user="bob").exit_code == 0
    assert _run(spec, "models", "promote", "loans@1", "--override", "x", user="root").exit_code == 0
    project = Project.open(spec)
    try:
        passed = [{**GATES[0], "value": 0.9, "passed": True}]
        register_model(project, "loans", digest="b" * 64, flavor="lightgbm", run_id=None,
                       signature={}, metrics={}, gates=passed, created_by="ana")  # fmt: skip
    finally:
        project.close()
    assert _run(spec, "models", "approve", "loans@2", user="bob").exit_code == 0
    assert _run(spec, "models", "promote", "loans@2", user="olga").exit_code == 0
    assert _run(spec, "models", "rollback", "loans", user="olga").exit_code == 2  # no --reason
    done = _run(spec, "models", "rollback", "loans", "--reason", "drift", user="olga")
    assert done.exit_code == 0, done.output
    assert "loans@1 is in production again" in done.output
    log = _run(spec, "audit", "log", "--object", "loans")
    assert "model.rollback" in log.output


def _token_for(spec: Path, name: str, role: str) -> str:
    project = Project.open(spec)
    try:
        create_user(project, name, role)
        return create_token(project, name, "cli", None)
    finally:
        project.close()


def test_a_token_decides_who_acts_over_user(spec: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELYARD_TOKEN", _token_for(spec, "bea", "approver"))
    done = _run(spec, "models", "approve", "loans@1", "--user", "bob")
    assert done.exit_code == 0, done.output
    assert "bea approved loans@1" in done.stdout and "no token" not in done.stderr
    monkeypatch.setenv("MODELYARD_TOKEN", "my_not-a-real-token")
    refused = _run(spec, "models", "approve", "loans@1", user="bob")
    assert isinstance(refused.exception, AuthenticationError)


def test_login_writes_a_private_credentials_file_the_cli_uses(spec: Path, tmp_path: Path) -> None:
    token = _token_for(spec, "bea", "approver")
    done = runner.invoke(app, ["login", "--url", "http://api.example", "--token", token])
    assert done.exit_code == 0, done.output
    path = tmp_path / "config" / "modelyard" / "credentials"
    assert path.stat().st_mode & 0o777 == 0o600
    assert credentials.load_credentials() == credentials.Credentials("http://api.example", token)
    approved = _run(spec, "models", "approve", "loans@1", user="bob")
    assert approved.exit_code == 0 and "bea approved loans@1" in approved.stdout


def test_without_a_token_the_local_user_is_named_once_on_stderr(
    spec: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(credentials, "_warned", set())
    done = _run(spec, "models", "approve", "loans@1", user="bob")
    assert done.exit_code == 0, done.output
    note = "no token: acting as local user 'bob' (allowed on the embedded store only)"
    assert done.stderr.count(note) == 1 and note not in done.stdout
    again = _run(spec, "models", "alias", "loans", "challenger", "1", user="bob")
    assert "no token" not in again.stderr


def test_postgresql_writes_need_a_token(
    spec: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELYARD_DB_URL", postgres_url)
    project = Project.open(spec)
    try:
        register_model(project, "loans", digest="a" * 64, flavor="lightgbm", run_id=None,
                       signature={}, metrics={}, gates=GATES, created_by="ana")  # fmt: skip
    finally:
        project.close()
    refused = _run(spec, "models", "approve", "loans@1", user="bob")
    assert isinstance(refused.exception, AuthenticationError)
    assert "need an API token" in refused.exception.message
    monkeypatch.setenv("MODELYARD_TOKEN", _token_for(spec, "bea", "approver"))
    done = _run(spec, "models", "approve", "loans@1")
    assert done.exit_code == 0 and "bea approved loans@1" in done.stdout
