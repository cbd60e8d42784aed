"""``ManagementClient`` and the remote CLI against the real app, in process (no network)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from modelyard.api import create_management_app
from modelyard.api.client import ManagementClient
from modelyard.cli import app, remote
from modelyard.errors import (
    AuthenticationError,
    ConflictError,
    InvalidInputError,
    ModelyardError,
    NotFoundError,
    PermissionDeniedError,
    StoreError,
)
from modelyard.project import Project
from modelyard.registry import users
from modelyard.registry.versions import register_model

URL = "http://testserver"
Connect = Callable[[str], ManagementClient]
GATES = [{"name": "recall", "direction": "max", "threshold": 0.8, "value": 0.74, "passed": False}]
PASSED = [{**GATES[0], "value": 0.9, "passed": True}]


class _InProcess(httpx.BaseTransport):
    """Hands each request to the app through Starlette's test client."""

    def __init__(self, test: TestClient) -> None:
        self.test = test

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        answer = self.test.request(
            request.method, str(request.url), headers=request.headers, content=request.read()
        )
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)


@pytest.fixture
def governed(project: Project) -> Project:
    """loans@1 (recall gate failed) and loans@2 (passed), both by ana; roles from the spec."""
    roles = project.spec.governance.roles
    roles.update({"ana": "scientist", "bob": "approver", "olga": "operator", "vic": "viewer"})
    for name in ("ana", "bob", "olga", "vic"):
        users.get_or_create_user(project, name)
    users.create_user(project, "root", "admin")
    for digest, gates in (("a", GATES), ("b", PASSED)):
        register_model(
            project,
            "loans",
            digest=digest * 64,
            flavor="lightgbm",
            run_id=None,
            signature={},
            metrics={"auc": 0.8},
            gates=gates,
            created_by="ana",
        )
    return project


@pytest.fixture
def transport(governed: Project) -> Iterator[httpx.BaseTransport]:
    app_ = create_management_app(governed)
    with TestClient(app_, base_url=URL, raise_server_exceptions=False) as test:
        yield _InProcess(test)


@pytest.fixture
def as_user(governed: Project, transport: httpx.BaseTransport) -> Iterator[Connect]:
    opened: list[ManagementClient] = []

    def connect(name: str) -> ManagementClient:
        client = ManagementClient(URL, users.create_token(governed, name), transport=transport)
        opened.append(client)
        return client

    yield connect
    for client in opened:
        client.close()


def test_me_and_reads(as_user: Connect) -> None:
    olga = as_user("olga")
    me = olga.me()
    assert (me["name"], me["role"]) == ("olga", "operator")
    assert "promote" in me["permissions"] and "approve" not in me["permissions"]
    models = olga.models()
    assert [m.ref for m in models] == ["loans@1", "loans@2"]
    assert isinstance(models[0].created_at, datetime) and models[0].aliases == ()
    assert models[0].gates[0]["name"] == "recall" and models[1].metrics == {"auc": 0.8}
    assert olga.model_version("loans", 2).digest == "b" * 64
    with pytest.raises(NotFoundError):
        olga.model_version("loans", 9)


def test_approve_then_promote_refused_names_the_failing_gate(as_user: Connect) -> None:
    decision = as_user("bob").approve("loans", 1, comment="ok")
    assert (decision.ref, decision.user, decision.decision) == ("loans@1", "bob", "approve")
    with pytest.raises(ConflictError) as refused:
        as_user("olga").promote("loans", 1)
    assert "gate 'recall ≥ 0.8' failed (0.74)" in refused.value.message
    assert refused.value.http_status == 409
    promoted = as_user("root").promote("loans", 1, override_reason="deadline")
    assert promoted.stage == "production" and promoted.aliases == ("champion",)
    rejected = as_user("bob").reject("loans", 2, comment="leaky")
    assert rejected.decision == "reject" and rejected.comment == "leaky"


def test_refusals_come_back_as_modelyard_errors(
    as_user: Connect, transport: httpx.BaseTransport
) -> None:
    with pytest.raises(PermissionDeniedError) as denied:
        as_user("vic").approve("loans", 1)
    assert "'vic'" in denied.value.message and denied.value.details["role"] == "viewer"
    with pytest.raises(AuthenticationError):
        ManagementClient(URL, "my_" + "x" * 43, transport=transport).me()
    with pytest.raises(InvalidInputError):  # the API refuses a blank comment (422)
        as_user("bob").reject("loans", 1, comment=" ")


def test_rollback_and_the_audit_log(as_user: Connect) -> None:
    bob, olga = as_user("bob"), as_user("olga")
    with pytest.raises(ConflictError, match="nothing to roll back"):
        olga.rollback("loans", "drift")
    bob.approve("loans", 1)
    as_user("root").promote("loans", 1, override_reason="deadline")
    bob.approve("loans", 2)
    assert olga.promote("loans", 2).stage == "production"
    restored = olga.rollback("loans", "drift")
    assert restored.ref == "loans@1" and restored.stage == "production"
    assert olga.model_version("loans", "champion").version == 1
    with pytest.raises(PermissionDeniedError):
        as_user("vic").rollback("loans", "drift")
    latest = olga.audit(limit=5, object_id="loans")
    assert (latest[0].actor, latest[0].action) == ("vic", "model.rollback.refused")
    assert any(e.action == "model.rollback" and e.actor == "olga" for e in latest)
    assert all(e.object_id.startswith("loans") for e in latest)
    verified = olga.audit_verify()
    assert verified.ok and verified.events > len(latest)


def test_unreachable_and_non_json_servers_are_clear_errors() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    client = ManagementClient("http://nowhere:9", "my_x", transport=httpx.MockTransport(refuse))
    with pytest.raises(StoreError) as unreachable:
        client.me()
    message = unreachable.value.message
    assert "Cannot reach the modelyard server at http://nowhere:9" in message
    assert "MODELYARD_URL" in message

    def proxy(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, text="<html>Bad Gateway</html>")

    client = ManagementClient("http://proxy", "my_x", transport=httpx.MockTransport(proxy))
    with pytest.raises(ModelyardError) as bad:
        client.models()
    assert bad.value.http_status == 502 and "HTTP 502" in bad.value.message


# ---------------------------------------------------------------------- the CLI

runner = CliRunner()


@pytest.fixture
def cli_env(
    governed: Project,
    transport: httpx.BaseTransport,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, str]:
    """MODELYARD_URL set and the CLI's client wired to the in-process app."""
    for name in ("MODELYARD_TOKEN", "MODELYARD_URL", "MODELYARD_USER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))  # no real credentials
    monkeypatch.chdir(tmp_path)  # no local modelyard.yaml to fall back on
    monkeypatch.setattr(
        remote,
        "_client_factory",
        lambda url, token: ManagementClient(url, token, transport=transport),
    )
    return {"MODELYARD_URL": URL}


def test_cli_with_modelyard_url_goes_through_the_server(
    cli_env: dict[str, str], governed: Project
) -> None:
    bob = {**cli_env, "MODELYARD_TOKEN": users.create_token(governed, "bob")}
    olga = {**cli_env, "MODELYARD_TOKEN": users.create_token(governed, "olga")}
    done = runner.invoke(app, ["models", "approve", "loans@1", "--comment", "ok"], env=bob)
    assert done.exit_code == 0, done.output
    assert "bob approved loans@1" in done.stdout and "no token" not in done.stderr
    refused = runner.invoke(app, ["models", "promote", "loans@1"], env=olga)
    assert isinstance(refused.exception, ConflictError)
    assert "gate 'recall ≥ 0.8' failed" in refused.exception.message
    listed = runner.invoke(app, ["models", "list"], env=olga)
    assert listed.exit_code == 0, listed.output
    assert "loans@1" in listed.stdout and "loans@2" in listed.stdout
    log = runner.invoke(app, ["audit", "log", "--object", "loans"], env=olga)
    assert log.exit_code == 0 and "model.approve" in log.stdout and "model.promote" in log.stdout
    verified = runner.invoke(app, ["audit", "verify"], env=olga)
    assert verified.exit_code == 0 and "intact" in verified.stdout


def test_cli_url_option_and_a_missing_token(cli_env: dict[str, str], governed: Project) -> None:
    token = {"MODELYARD_TOKEN": users.create_token(governed, "olga")}
    listed = runner.invoke(app, ["--url", URL, "models", "list"], env=token)
    assert listed.exit_code == 0 and "loans@2" in listed.stdout
    missing = runner.invoke(app, ["models", "list"], env=cli_env)
    assert isinstance(missing.exception, AuthenticationError)
    assert "MODELYARD_TOKEN" in missing.exception.message
    archived = runner.invoke(
        app, ["models", "promote", "loans@1", "--stage", "archived", "--reason", "old"],
        env={**cli_env, **token},
    )  # fmt: skip
    assert isinstance(archived.exception, InvalidInputError)
