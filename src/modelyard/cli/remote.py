"""Talking to a modelyard server instead of the local store (``MODELYARD_URL`` or ``--url``).

When a server URL is given, the governance commands (``models list``,
``models approve/reject/promote/rollback``, ``audit log/verify``) call the
management API with the API token (``MODELYARD_TOKEN`` or ``modelyard login``)
and act as the token's user. The URL stored by ``modelyard login`` is not
enough on its own: the local project stays the default unless asked otherwise.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

import typer

from modelyard.cli.credentials import ENV_TOKEN, ENV_URL, load_credentials
from modelyard.errors import AuthenticationError

if TYPE_CHECKING:
    from modelyard.api.client import ManagementClient


def _new_client(url: str, token: str) -> ManagementClient:
    from modelyard.api.client import ManagementClient

    return ManagementClient(url, token)


_client_factory: Callable[[str, str], ManagementClient] = _new_client
"""Builds the client from (url, token); tests swap it for one on an in-process transport."""


def server_url(ctx: typer.Context) -> str | None:
    """``--url`` if given, else ``MODELYARD_URL``; None means use the local project."""
    root = ctx.find_root()
    given = root.obj.get("url") if isinstance(root.obj, dict) else None
    return given or os.environ.get(ENV_URL) or None


def remote_client(ctx: typer.Context) -> ManagementClient | None:
    """A client for the server named by ``--url``/``MODELYARD_URL``, or None to stay local."""
    url = server_url(ctx)
    if url is None:
        return None
    token = load_credentials().token
    if token is None:
        raise AuthenticationError(
            f"Talking to the modelyard server at {url} needs an API token. Set {ENV_TOKEN} "
            "or run `modelyard login --token my_…` (an admin creates tokens with "
            f"`modelyard users token NAME`), or unset {ENV_URL} to use the local project."
        )
    return _client_factory(url, token)


def split_ref(ref: str) -> tuple[str, str]:
    """``loans@3`` → ("loans", "3"); a server call needs the version (or alias) spelled out."""
    from modelyard.errors import InvalidInputError

    name, at, version = ref.rpartition("@")
    if not at or not name or not version:
        raise InvalidInputError(f"Give the version as NAME@V or NAME@alias, not {ref!r}.")
    return name, version


def version_number(client: ManagementClient, ref: str) -> tuple[str, int]:
    """The name and version number of ``ref``, resolving an alias on the server."""
    name, version = split_ref(ref)
    if version.isdigit():
        return name, int(version)
    return name, client.model_version(name, version).version
