from datetime import timedelta

import pytest
import sqlalchemy as sa

from modelyard.errors import (
    AuthenticationError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
)
from modelyard.project import Project
from modelyard.registry import users
from modelyard.store import tables, utcnow


@pytest.fixture
def governed(project: Project) -> Project:
    """The demo project with two users named in the spec."""
    project.spec.governance.roles.update({"ann": "approver", "ola": "operator"})
    return project


def test_role_comes_from_the_table_then_the_spec_then_viewer(governed: Project) -> None:
    assert users.role_of(governed, "ann") == "approver"
    assert users.role_of(governed, "nobody") == "viewer"
    users.create_user(governed, "ann", "scientist")
    assert users.role_of(governed, "ann") == "scientist"
    assert users.get_user(governed, "ola").source == "spec"
    assert users.get_user(governed, "nobody").source == "default"


def test_get_or_create_stores_the_current_role_once(governed: Project) -> None:
    created = users.get_or_create_user(governed, "ola")
    assert (created.role, created.source) == ("operator", "table")
    again = users.get_or_create_user(governed, "ola", role="admin")
    assert again.id == created.id and again.role == "operator"
    assert [u.name for u in users.list_users(governed)] == ["ola", "ann"]


def test_users_are_unique_and_roles_checked(project: Project) -> None:
    users.create_user(project, "sam", "scientist")
    with pytest.raises(ConflictError, match="already exists"):
        users.create_user(project, "sam", "viewer")
    with pytest.raises(InvalidInputError, match="use one of viewer, scientist"):
        users.create_user(project, "kim", "superuser")
    with pytest.raises(InvalidInputError, match="not valid"):
        users.create_user(project, " spaced", "viewer")
    with pytest.raises(NotFoundError, match="users add"):
        users.set_role(project, "kim", "admin")
    assert users.set_role(project, "sam", "admin").role == "admin"


def test_permissions_are_explicit_per_role() -> None:
    assert users.holders("approve") == ["approver", "admin"]
    assert users.holders("promote") == ["operator", "admin"]
    assert "approve" not in users.permissions_of("operator")
    assert "promote" not in users.permissions_of("approver")
    assert users.permissions_of("viewer") == ["read"]
    assert set(users.permissions_of("admin")) == set(users.PERMISSIONS)


def test_require_names_user_role_permission_and_holders(governed: Project) -> None:
    assert users.require(governed, "ann", "approve").name == "ann"
    with pytest.raises(PermissionDeniedError) as caught:
        users.require(governed, "ann", "promote")
    message = caught.value.message
    assert "'ann'" in message and "'approver'" in message and "'promote'" in message
    assert "operator, admin" in message
    assert caught.value.http_status == 403
    users.create_user(governed, "dee", "admin")
    users.disable_user(governed, "dee")
    with pytest.raises(PermissionDeniedError, match="disabled"):
        users.require(governed, "dee", "read")
    with pytest.raises(InvalidInputError, match="Unknown permission"):
        users.require(governed, "ann", "fly")


def test_a_token_is_shown_once_and_stored_hashed(project: Project) -> None:
    users.create_user(project, "sam", "scientist")
    token = users.create_token(project, "sam", "laptop")
    assert token.startswith("my_") and len(token) == 46
    with project.db.read() as session:
        stored = session.scalars(sa.select(tables.ApiToken.token_hash)).all()
    assert token not in stored and len(stored[0]) == 64
    identity = users.authenticate(project, token)
    assert (identity.user.name, identity.user.role, identity.token.name) == (
        "sam",
        "scientist",
        "laptop",
    )
    assert users.create_token(project, "sam") != token
    with pytest.raises(NotFoundError):
        users.create_token(project, "ghost")


def test_unknown_malformed_revoked_expired_and_disabled_tokens_fail(project: Project) -> None:
    users.create_user(project, "sam", "scientist")
    with pytest.raises(AuthenticationError, match="malformed"):
        users.authenticate(project, "Bearer nonsense")
    with pytest.raises(AuthenticationError, match="not known"):
        users.authenticate(project, "my_" + "A" * 43)
    revoked = users.create_token(project, "sam", "old")
    info = users.revoke_token(project, users.authenticate(project, revoked).token.id)
    assert info.revoked_at is not None
    with pytest.raises(AuthenticationError, match="revoked"):
        users.authenticate(project, revoked)
    expiring = users.create_token(project, "sam", "short", expires_in=timedelta(hours=1))
    with project.db.write() as session:
        session.execute(sa.update(tables.ApiToken).values(expires_at=utcnow()))
    with pytest.raises(AuthenticationError, match="expired"):
        users.authenticate(project, expiring)
    live = users.create_token(project, "sam", "live")
    users.disable_user(project, "sam")
    with pytest.raises(AuthenticationError, match="disabled") as caught:
        users.authenticate(project, live)
    assert caught.value.http_status == 401
    with pytest.raises(NotFoundError):
        users.revoke_token(project, "nope")


def test_tokens_are_listed_without_secrets(project: Project) -> None:
    users.create_user(project, "sam", "scientist")
    users.create_token(project, "sam", "ci", expires_in=users.parse_duration("30d"))
    (info,) = users.list_tokens(project, "sam")
    assert info.name == "ci" and info.expires_at is not None
    assert info.expires_at - info.created_at == timedelta(days=30)
    assert users.list_tokens(project, "nobody") == []


@pytest.mark.parametrize(("text", "expected"), [("90m", 90), ("12h", 720), ("2w", 20160)])
def test_durations_parse(text: str, expected: int) -> None:
    assert users.parse_duration(text) == timedelta(minutes=expected)


@pytest.mark.parametrize("text", ["", "0d", "30", "d", "3y", "-1d"])
def test_bad_durations_say_how_to_write_one(text: str) -> None:
    with pytest.raises(InvalidInputError, match="as in '30d'"):
        users.parse_duration(text)


def test_user_and_token_changes_are_audited_without_secrets(project: Project) -> None:
    from modelyard.registry.audit import events, verify

    users.create_user(project, "sam", "scientist", actor="root")
    token = users.create_token(project, "sam", "ci", actor="root")
    token_id = users.authenticate(project, token).token.id
    users.revoke_token(project, token_id, actor="root")
    users.revoke_token(project, token_id, actor="root")  # no second event
    users.set_role(project, "sam", "approver")
    logged = events(project, object_type="user", object_id="sam")
    assert [e.action for e in reversed(logged)] == [
        "user.create",
        "token.create",
        "token.revoke",
        "user.role",
    ]
    assert logged[0].actor == "local" and logged[-1].actor == "root"
    assert logged[1].payload["token_id"] == token_id
    assert all(token not in str(e.payload) for e in logged)
    assert verify(project).ok
