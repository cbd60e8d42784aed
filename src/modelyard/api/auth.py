"""Bearer-token authentication and per-permission checks, as FastAPI dependencies.

``caller`` turns ``Authorization: Bearer my_…`` into an ``Identity`` (401 when
missing or refused); ``permit("approve")`` also checks the role (403). The
acting user of a write is always the token's user, never a body field.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from modelyard.errors import AuthenticationError
from modelyard.project import Project
from modelyard.registry.users import Identity, authenticate, require

bearer = HTTPBearer(
    auto_error=False,
    description="A modelyard API token (`modelyard users token NAME`), as `Bearer my_…`.",
)


def project_of(request: Request) -> Project:
    """The project the app was created for."""
    project: Project = request.app.state.project
    return project


ProjectDep = Annotated[Project, Depends(project_of)]


def caller(
    project: ProjectDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Identity:
    """The authenticated caller, or AuthenticationError (401)."""
    if credentials is None:
        raise AuthenticationError(
            "This call needs an API token: send the header 'Authorization: Bearer my_…'. "
            "Create a token with `modelyard users token NAME`."
        )
    return authenticate(project, credentials.credentials)


def permit(permission: str) -> Callable[[Project, Identity], Identity]:
    """A dependency that lets the call through only if the caller holds ``permission``."""

    def check(project: ProjectDep, who: Annotated[Identity, Depends(caller)]) -> Identity:
        require(project, who.user.name, permission)
        return who

    check.__name__ = f"permit_{permission}"
    return check


Reader = Annotated[Identity, Depends(permit("read"))]
