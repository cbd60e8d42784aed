"""``/api/v1/me``: who the token belongs to and what they may do."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.encoders import jsonable_encoder

from modelyard.api.auth import caller
from modelyard.registry.users import Identity, permissions_of

router = APIRouter(prefix="/api/v1", tags=["identity"])


@router.get("/me")
def me(who: Annotated[Identity, Depends(caller)]) -> dict[str, Any]:
    """The caller's name, role, permissions and the token they used."""
    return {
        "name": who.user.name,
        "role": who.user.role,
        "permissions": permissions_of(who.user.role),
        "token": jsonable_encoder(who.token),
    }
