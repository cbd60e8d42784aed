"""Who the CLI acts as: an API token from ``MODELYARD_TOKEN`` or the credentials file.

The credentials file (``$XDG_CONFIG_HOME/modelyard/credentials``, by default
``~/.config/modelyard/credentials``) is a small INI file written by
``modelyard login`` with mode 0600::

    [default]
    url = https://modelyard.example.com
    token = my_…

With a token, the acting user is the token's user (``--user`` and
``MODELYARD_USER`` are ignored). Without one, a local single-user default
(``--user``, ``MODELYARD_USER`` or the OS user name) is allowed only on the
embedded SQLite store, and the CLI says so once on stderr; on PostgreSQL a
write without a token is an AuthenticationError.
"""

from __future__ import annotations

import configparser
import getpass
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from modelyard.errors import AuthenticationError

if TYPE_CHECKING:
    from modelyard.project import Project

ENV_TOKEN = "MODELYARD_TOKEN"
ENV_URL = "MODELYARD_URL"
SECTION = "default"
_warned: set[str] = set()
"""The local users the CLI already named on stderr in this process."""


@dataclass(frozen=True)
class Credentials:
    """The management API's URL and an API token, either of which may be missing."""

    url: str | None
    token: str | None


def credentials_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "modelyard" / "credentials"


def load_credentials() -> Credentials:
    """``MODELYARD_URL`` / ``MODELYARD_TOKEN``, each falling back to the credentials file."""
    stored = configparser.ConfigParser()
    path = credentials_path()
    if path.is_file():
        stored.read(path, encoding="utf-8")
    url = os.environ.get(ENV_URL) or stored.get(SECTION, "url", fallback=None)
    token = os.environ.get(ENV_TOKEN) or stored.get(SECTION, "token", fallback=None)
    return Credentials(url or None, token or None)


def save_credentials(url: str | None, token: str) -> Path:
    """Write the credentials file, readable by its owner only (0600)."""
    path = credentials_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    stored = configparser.ConfigParser()
    stored[SECTION] = {"token": token, **({"url": url} if url else {})}
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)  # an existing file keeps its mode otherwise
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        stored.write(file)
    return path


def acting_user(project: Project, user: str | None) -> str:
    """The token's user if there is a token; else the local default, embedded store only."""
    from modelyard.registry.users import authenticate

    token = load_credentials().token
    if token is not None:
        return authenticate(project, token).user.name
    if project.db.dialect != "sqlite":
        raise AuthenticationError(
            f"This project's store is {project.db.dialect}: changes need an API token. "
            f"Set {ENV_TOKEN} or run `modelyard login --token my_…` "
            "(an admin creates tokens with `modelyard users token NAME`)."
        )
    name = user or getpass.getuser()
    if name not in _warned:
        _warned.add(name)
        print(
            f"no token: acting as local user '{name}' (allowed on the embedded store only)",
            file=sys.stderr,
        )
    return name
