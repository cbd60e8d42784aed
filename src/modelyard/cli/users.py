"""``modelyard users …`` and ``modelyard server``: users, roles, tokens, the management API.

These commands work on the project's database directly (whoever can open it
administers it); changes are audited with the actor "local".
"""

from __future__ import annotations

from typing import Annotated

import typer

from modelyard.cli._common import console, open_project, sub_app, table, when

users_app = sub_app("Users, roles and API tokens.")


@users_app.command("add")
def users_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The user's name.")],
    role: Annotated[str, typer.Option(help="viewer | scientist | approver | operator | admin")],
) -> None:
    """Add a user with a role."""
    from modelyard.registry.users import create_user

    user = create_user(open_project(ctx), name, role)
    console().print(f"Added user [bold]{user.name}[/] with role {user.role}.")


@users_app.command("list")
def users_list(
    ctx: typer.Context,
    tokens: Annotated[bool, typer.Option("--tokens", help="Also list API tokens.")] = False,
) -> None:
    """List users (stored, and those only named in the spec) with their roles."""
    from modelyard.registry.users import list_tokens, list_users

    project = open_project(ctx)
    rows = [
        (u.name, u.role, u.source, "disabled" if u.disabled else "active", when(u.created_at))
        for u in list_users(project)
    ]
    table("Users", ("name", "role", "from", "status", "created"), rows)
    if tokens:
        token_rows = [
            (t.id, t.user, t.name, when(t.created_at), when(t.expires_at), when(t.revoked_at))
            for t in list_tokens(project)
        ]
        table("API tokens", ("id", "user", "name", "created", "expires", "revoked"), token_rows)


@users_app.command("role")
def users_role(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="A stored user.")],
    role: Annotated[str, typer.Argument(help="viewer | scientist | approver | operator | admin")],
) -> None:
    """Change a stored user's role."""
    from modelyard.registry.users import set_role

    user = set_role(open_project(ctx), name, role)
    console().print(f"User [bold]{user.name}[/] now has role {user.role}.")


@users_app.command("disable")
def users_disable(
    ctx: typer.Context, name: Annotated[str, typer.Argument(help="A stored user.")]
) -> None:
    """Disable a user: their tokens stop working."""
    from modelyard.registry.users import disable_user

    disable_user(open_project(ctx), name)
    console().print(f"User [bold]{name}[/] is disabled; their tokens no longer work.")


@users_app.command("token")
def users_token(
    ctx: typer.Context,
    user: Annotated[str, typer.Argument(help="The stored user the token acts as.")],
    name: Annotated[str, typer.Option("--name", help="A label for the token.")] = "default",
    expires: Annotated[
        str | None, typer.Option(help="Lifetime: 90m, 12h, 30d or 2w (default: never).")
    ] = None,
) -> None:
    """Create an API token; it is printed once and cannot be shown again."""
    from modelyard.registry.users import create_token, parse_duration

    lifetime = parse_duration(expires) if expires else None
    token = create_token(open_project(ctx), user, name, lifetime)
    err = console()
    err.print(f"API token '{name}' for {user} (shown once; store it now):", highlight=False)
    typer.echo(token)


@users_app.command("revoke")
def users_revoke(
    ctx: typer.Context,
    token_id: Annotated[str, typer.Argument(help="The token's id (`users list --tokens`).")],
) -> None:
    """Revoke an API token by its id."""
    from modelyard.registry.users import revoke_token

    info = revoke_token(open_project(ctx), token_id)
    console().print(f"Revoked token '{info.name}' ({info.id}) of {info.user}.")


def api_command(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8081,
) -> None:
    """Run the management API (bearer tokens required; OpenAPI docs at /docs)."""
    from modelyard.api.server import run_api
    from modelyard.spec import find_spec

    spec = find_spec(explicit=(ctx.obj or {}).get("spec")).resolve()
    console().print(f"Management API on http://{host}:{port} (docs at /docs). Ctrl-C stops.")
    run_api(spec, host=host, port=port)


def login_command(
    token: Annotated[str, typer.Option(help="An API token (`modelyard users token NAME`).")],
    url: Annotated[
        str | None, typer.Option(help="The management API's URL, for remote commands.")
    ] = None,
) -> None:
    """Store an API token (and the API's URL) for the CLI, readable by you only (0600)."""
    from modelyard.cli.credentials import save_credentials

    path = save_credentials(url, token)
    console().print(f"Saved credentials to {path} (mode 0600).")
