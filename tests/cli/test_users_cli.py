"""``modelyard users …``: add, list, role, token (printed once), revoke."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from modelyard.cli import app
from modelyard.data.demo import DEMO_SPEC
from modelyard.errors import AuthenticationError, InvalidInputError
from modelyard.project import Project
from modelyard.registry.users import authenticate, list_tokens

runner = CliRunner()


@pytest.fixture
def spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("MODELYARD_DB_URL", raising=False)
    monkeypatch.delenv("MODELYARD_ARTIFACTS", raising=False)
    path = tmp_path / "modelyard.yaml"
    path.write_text(DEMO_SPEC)
    return path


def _run(spec: Path, *args: str) -> str:
    result = runner.invoke(app, ["--spec", str(spec), *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_users_add_role_token_and_revoke(spec: Path) -> None:
    _run(spec, "users", "add", "sam", "--role", "scientist")
    _run(spec, "users", "role", "sam", "approver")
    assert "approver" in _run(spec, "users", "list")
    output = _run(spec, "users", "token", "sam", "--name", "ci", "--expires", "30d")
    token = output.strip().splitlines()[-1]
    assert token.startswith("my_")
    project = Project.open(spec)
    try:
        assert authenticate(project, token).user.role == "approver"
        (info,) = list_tokens(project)
        assert info.name == "ci" and info.expires_at is not None
        assert token not in _run(spec, "users", "list", "--tokens")
        _run(spec, "users", "revoke", info.id)
        with pytest.raises(AuthenticationError, match="revoked"):
            authenticate(project, token)
    finally:
        project.close()


def test_bad_role_and_duration_are_clear_errors(spec: Path) -> None:
    with pytest.raises(InvalidInputError, match="use one of"):
        runner.invoke(
            app, ["--spec", str(spec), "users", "add", "x", "--role", "god"], catch_exceptions=False
        )
    _run(spec, "users", "add", "sam", "--role", "viewer")
    with pytest.raises(InvalidInputError, match="as in '30d'"):
        runner.invoke(
            app,
            ["--spec", str(spec), "users", "token", "sam", "--expires", "soon"],
            catch_exceptions=False,
        )


def test_api_command_is_registered() -> None:
    result = runner.invoke(app, ["api", "--help"])
    assert result.exit_code == 0 and "--port" in result.output


def test_server_command_is_registered() -> None:
    result = runner.invoke(app, ["server", "--help"])
    assert result.exit_code == 0 and "management API" in result.output
