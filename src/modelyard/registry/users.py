"""Users, roles, permissions and API tokens.

Who may do what:

    role_of(project, name)     the users table wins; else ``governance.roles`` in the
                               spec; else "viewer" (an unknown name may only read)
    PERMISSIONS                permission → the roles that hold it, listed explicitly:
                               the roles are ordered (viewer < scientist < approver <
                               operator < admin) but approving and promoting are
                               separate duties, so an operator cannot approve and an
                               approver cannot promote
    require(project, name, p)  the user's role, or PermissionDeniedError naming the
                               user, the role, the permission and who holds it

Tokens are ``my_`` plus 32 random bytes (URL-safe base64). The plaintext is
returned once by ``create_token``; only its sha256 is stored, so a lookup by
hash finds it without comparing secrets character by character. A token
stops working when revoked, when it expires, or when its user is disabled.

Creating a user, changing a role, disabling a user, creating or revoking a
token each append an audit event (object ``user:NAME``) in the same
transaction; ``actor`` is who did it ("local" for the command line).

A user written to the users table keeps the role stored there: a later
change of ``governance.roles`` in the spec does not move it (use
``set_role``). ``get_or_create_user`` without a role stores the role the
name has at that moment (from the spec, else viewer).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, get_args

from sqlalchemy import select
from sqlalchemy.orm import Session

from modelyard.errors import (
    AuthenticationError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
)
from modelyard.project import Project
from modelyard.registry.audit import record
from modelyard.spec_catalogue import Role
from modelyard.store import new_id, tables, utcnow

ROLES: tuple[Role, ...] = get_args(Role)
"""Every role, from least to most trusted."""

PERMISSIONS: dict[str, frozenset[Role]] = {
    "read": frozenset(ROLES),
    "register": frozenset({"scientist", "approver", "operator", "admin"}),
    "approve": frozenset({"approver", "admin"}),
    "alias": frozenset({"operator", "admin"}),
    "promote": frozenset({"operator", "admin"}),
    "deploy": frozenset({"operator", "admin"}),
    "admin": frozenset({"admin"}),
}
"""Which roles hold each permission (explicit sets, not "this role and above")."""

LOCAL = "local"
"""The actor recorded for changes made through the local CLI (direct database access)."""

TOKEN_PREFIX = "my_"
_TOKEN = re.compile(r"my_[A-Za-z0-9_-]{43}")
_USER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,199}")
_DURATION = re.compile(r"(\d{1,6})([mhdw])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


@dataclass(frozen=True)
class User:
    """A user: their name, role, and whether they are stored or only named in the spec."""

    name: str
    role: Role
    id: str | None = None
    disabled: bool = False
    created_at: datetime | None = None
    source: str = "table"  # "table", "spec" or "default"


@dataclass(frozen=True)
class TokenInfo:
    """What is known about a token besides its secret."""

    id: str
    user: str
    name: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True)
class Identity:
    """An authenticated caller: the user and the token they presented."""

    user: User
    token: TokenInfo


# ---------------------------------------------------------------------- users


def create_user(project: Project, name: str, role: str, *, actor: str = LOCAL) -> User:
    """Add ``name`` with ``role`` (audited); an existing name is a ConflictError."""
    checked = check_role(role)
    _check_name(name)
    with project.db.write() as session:
        if _user_row(session, name) is not None:
            raise ConflictError(
                f"User '{name}' already exists. Change their role with "
                f"`modelyard users role {name} ROLE`."
            )
        row = tables.User(id=new_id(), name=name, role=checked, disabled=False)
        session.add(row)
        session.flush()
        _audit(session, actor, "user.create", name, {"role": checked})
        return _user(row)


def get_or_create_user(
    project: Project, name: str, role: str | None = None, *, actor: str = LOCAL
) -> User:
    """The stored user ``name``, created (audited) on first use with ``role`` or ``role_of``."""
    _check_name(name)
    checked = check_role(role) if role is not None else role_of(project, name)
    with project.db.write() as session:
        row = _user_row(session, name)
        if row is None:
            row = tables.User(id=new_id(), name=name, role=checked, disabled=False)
            session.add(row)
            session.flush()
            _audit(session, actor, "user.create", name, {"role": checked})
        return _user(row)


def set_role(project: Project, name: str, role: str, *, actor: str = LOCAL) -> User:
    """Give the stored user ``name`` a new role (audited)."""
    checked = check_role(role)
    with project.db.write() as session:
        row = _existing(session, name)
        _audit(session, actor, "user.role", name, {"from": row.role, "to": checked})
        row.role = checked
        session.flush()
        return _user(row)


def disable_user(project: Project, name: str, *, actor: str = LOCAL) -> User:
    """Disable ``name`` (audited): their tokens stop working and they hold no permission."""
    with project.db.write() as session:
        row = _existing(session, name)
        _audit(session, actor, "user.disable", name, {})
        row.disabled = True
        session.flush()
        return _user(row)


def get_user(project: Project, name: str) -> User:
    """The user ``name`` as stored, else as the spec names them, else a default viewer."""
    with project.db.read() as session:
        row = _user_row(session, name)
        if row is not None:
            return _user(row)
    spec_role = project.spec.governance.roles.get(name)
    if spec_role is not None:
        return User(name, spec_role, source="spec")
    return User(name, "viewer", source="default")


def list_users(project: Project) -> list[User]:
    """Stored users, then users only named in the spec, each group by name."""
    with project.db.read() as session:
        stored = [
            _user(row) for row in session.scalars(select(tables.User).order_by(tables.User.name))
        ]
    known = {user.name for user in stored}
    spec_only = [
        User(name, role, source="spec")
        for name, role in sorted(project.spec.governance.roles.items())
        if name not in known
    ]
    return stored + spec_only


def role_of(project: Project, name: str) -> Role:
    """The role of ``name``: users table, else the spec's ``governance.roles``, else viewer."""
    return get_user(project, name).role


def check_role(role: str) -> Role:
    """``role`` if it is one of ROLES, else an InvalidInputError listing them."""
    if role not in ROLES:
        raise InvalidInputError(
            f"Unknown role {role!r}; use one of {', '.join(ROLES)}.",
            details={"role": role, "allowed": list(ROLES)},
        )
    return role


# ---------------------------------------------------------------------- permissions


def holders(permission: str) -> list[Role]:
    """The roles holding ``permission``, in role order."""
    if permission not in PERMISSIONS:
        raise InvalidInputError(
            f"Unknown permission {permission!r}; use one of {', '.join(PERMISSIONS)}."
        )
    return [role for role in ROLES if role in PERMISSIONS[permission]]


def permissions_of(role: Role) -> list[str]:
    """Every permission ``role`` holds."""
    return [name for name, roles in PERMISSIONS.items() if role in roles]


def require(project: Project, user_name: str, permission: str) -> User:
    """The user ``user_name`` if their role grants ``permission``, else PermissionDeniedError."""
    allowed = holders(permission)
    user = get_user(project, user_name)
    if user.disabled:
        raise PermissionDeniedError(
            f"User '{user.name}' is disabled and may not {permission}. "
            "Ask an admin to enable the account or use another user.",
            details={"user": user.name, "permission": permission},
        )
    if user.role not in allowed:
        raise PermissionDeniedError(
            f"User '{user.name}' has role '{user.role}', which does not grant "
            f"'{permission}'; roles that do: {', '.join(allowed)}. "
            "Ask an admin for that role, or ask someone who has it.",
            details={
                "user": user.name,
                "role": user.role,
                "permission": permission,
                "allowed_roles": allowed,
            },
        )
    return user


# ---------------------------------------------------------------------- tokens


def create_token(
    project: Project,
    user: str,
    name: str = "default",
    expires_in: timedelta | None = None,
    *,
    actor: str = LOCAL,
) -> str:
    """A new token for the stored ``user`` (audited); the plaintext is returned once only."""
    if expires_in is not None and expires_in <= timedelta(0):
        raise InvalidInputError(f"A token must expire in the future; got {expires_in}.")
    if not name.strip() or len(name) > 200:
        raise InvalidInputError("A token name must have 1 to 200 characters.")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = utcnow()
    with project.db.write() as session:
        owner = _existing(session, user)
        row = tables.ApiToken(
            id=new_id(),
            user_id=owner.id,
            name=name,
            token_hash=_digest(token),
            created_at=now,
            expires_at=now + expires_in if expires_in is not None else None,
        )
        session.add(row)
        session.flush()
        _audit(session, actor, "token.create", user, _token_payload(row))
    return token


def authenticate(project: Project, token: str) -> Identity:
    """The user and token behind ``token``, or AuthenticationError saying why not."""
    if not _TOKEN.fullmatch(token):
        raise AuthenticationError(
            "The API token is malformed: a modelyard token starts with 'my_'. "
            "Create one with `modelyard users token NAME`."
        )
    digest = _digest(token)
    with project.db.read() as session:
        found = session.execute(
            select(tables.ApiToken, tables.User)
            .join(tables.User, tables.User.id == tables.ApiToken.user_id)
            .where(tables.ApiToken.token_hash == digest)
        ).first()
    if found is None or not hmac.compare_digest(found[0].token_hash, digest):
        raise AuthenticationError(
            "The API token is not known here. Create one with `modelyard users token NAME`."
        )
    row, owner = found
    _check_usable(row, owner)
    return Identity(_user(owner), _token_info(row, owner.name))


def revoke_token(project: Project, token_id: str, *, actor: str = LOCAL) -> TokenInfo:
    """Revoke the token with id ``token_id`` (audited; revoking twice is harmless)."""
    with project.db.write() as session:
        row = session.get(tables.ApiToken, token_id)
        if row is None:
            raise NotFoundError(
                f"No API token with id '{token_id}'. See `modelyard users list --tokens`."
            )
        owner = session.get_one(tables.User, row.user_id)
        if row.revoked_at is None:
            row.revoked_at = utcnow()
            session.flush()
            _audit(session, actor, "token.revoke", owner.name, _token_payload(row))
        return _token_info(row, owner.name)


def list_tokens(project: Project, user: str | None = None) -> list[TokenInfo]:
    """Every token (or one user's), oldest first; never the secrets."""
    query = select(tables.ApiToken, tables.User.name).join(
        tables.User, tables.User.id == tables.ApiToken.user_id
    )
    if user is not None:
        query = query.where(tables.User.name == user)
    with project.db.read() as session:
        rows = session.execute(query.order_by(tables.ApiToken.created_at)).all()
    return [_token_info(row, owner) for row, owner in rows]


def parse_duration(text: str) -> timedelta:
    """``30d``, ``12h``, ``90m`` or ``2w`` as a timedelta."""
    match = _DURATION.fullmatch(text.strip())
    if match is None or int(match[1]) == 0:
        raise InvalidInputError(
            f"Cannot read the duration {text!r}: use a positive number and a unit, "
            "m (minutes), h (hours), d (days) or w (weeks), as in '30d'."
        )
    return timedelta(**{_UNITS[match[2]]: int(match[1])})


# ---------------------------------------------------------------------- helpers


def _check_usable(row: tables.ApiToken, owner: tables.User) -> None:
    label = f"API token '{row.name}' ({row.id}) of user '{owner.name}'"
    if row.revoked_at is not None:
        raise AuthenticationError(
            f"The {label} was revoked at {row.revoked_at:%Y-%m-%d %H:%M} UTC. Use another token."
        )
    if row.expires_at is not None and row.expires_at <= utcnow():
        raise AuthenticationError(
            f"The {label} expired at {row.expires_at:%Y-%m-%d %H:%M} UTC. "
            f"Create a new one with `modelyard users token {owner.name}`."
        )
    if owner.disabled:
        raise AuthenticationError(
            f"The {label} belongs to a disabled user. Ask an admin to enable the account."
        )


def _audit(session: Session, actor: str, action: str, user: str, payload: dict[str, Any]) -> None:
    record(session, actor=actor, action=action, object_type="user", object_id=user, payload=payload)


def _token_payload(row: tables.ApiToken) -> dict[str, Any]:
    expires = row.expires_at.isoformat() if row.expires_at is not None else None
    return {"token_id": row.id, "name": row.name, "expires_at": expires}


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _check_name(name: str) -> None:
    if not _USER_NAME.fullmatch(name):
        raise InvalidInputError(
            f"User name {name!r} is not valid: use 1 to 200 letters, digits, '.', '_', "
            "'-' or '@', starting with a letter or digit."
        )


def _user_row(session: Session, name: str) -> tables.User | None:
    return session.scalar(select(tables.User).where(tables.User.name == name))


def _existing(session: Session, name: str) -> tables.User:
    row = _user_row(session, name)
    if row is None:
        raise NotFoundError(
            f"No stored user '{name}'. Add them with `modelyard users add {name} --role ROLE`."
        )
    return row


def _user(row: tables.User) -> User:
    return User(row.name, check_role(row.role), row.id, row.disabled, row.created_at)


def _token_info(row: tables.ApiToken, owner: str) -> TokenInfo:
    return TokenInfo(row.id, owner, row.name, row.created_at, row.expires_at, row.revoked_at)
