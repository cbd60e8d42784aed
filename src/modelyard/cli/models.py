"""``modelyard models …``: registered models and versions."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from modelyard.cli._common import console, num, open_project, sub_app, table, when
from modelyard.cli.credentials import acting_user
from modelyard.cli.remote import remote_client, server_url, version_number
from modelyard.errors import InvalidInputError

if TYPE_CHECKING:
    from modelyard.registry.imports import ImportedModel
    from modelyard.registry.versions import ModelVersion

models_app = sub_app("Registered models and versions.")


@models_app.command("list")
def models_list(ctx: typer.Context) -> None:
    """List registered model versions with aliases and stage."""
    from modelyard.registry.versions import list_models

    if client := remote_client(ctx):
        with client:
            print_models(client.models())
        return
    print_models(list_models(open_project(ctx)))


def print_models(versions: Iterable[ModelVersion]) -> None:
    rows = [
        (m.ref, ", ".join(m.aliases), m.stage, m.flavor, m.run_id or "", when(m.created_at))
        for m in versions
    ]
    table("Models", ("version", "aliases", "stage", "flavor", "run", "created"), rows)


@models_app.command("show")
def models_show(
    ctx: typer.Context, ref: Annotated[str, typer.Argument(help="NAME, NAME@V or NAME@alias")]
) -> None:
    """Show one model version: metrics, gates, lineage to its run."""
    from modelyard.registry.versions import resolve

    m = resolve(open_project(ctx), ref)
    console().print(
        f"[bold]{m.ref}[/] aliases: {', '.join(m.aliases) or '-'} · stage {m.stage} "
        f"· run {m.run_id} · bundle sha256 {m.digest[:12]}"
    )
    baseline = f"sha256 {m.baseline_digest[:12]}" if m.baseline_digest else "none stored"
    console().print(f"[bold]Drift baseline:[/] {baseline}")
    table("Metrics", ("name", "value"), [(k, num(v)) for k, v in sorted(m.metrics.items())])
    table(
        "Gates",
        ("gate", "value", "result"),
        [(g["name"], num(g["value"]), "pass" if g["passed"] else "FAIL") for g in m.gates],
    )


UserOption = Annotated[
    str | None,
    typer.Option(
        "--user",
        envvar="MODELYARD_USER",
        help="Who is acting without a token (embedded store only; default: $MODELYARD_USER, "
        "else your OS user name). A token (MODELYARD_TOKEN, `modelyard login`) overrides it.",
    ),
]


@models_app.command("approve")
def models_approve(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NAME@V or NAME@alias")],
    comment: Annotated[str | None, typer.Option(help="Why you approve.")] = None,
    user: UserOption = None,
) -> None:
    """Approve a model version for production (approvers; never the model's author)."""
    from modelyard.registry.promotion import approve

    if client := remote_client(ctx):
        with client:
            decision = client.approve(*version_number(client, ref), comment=comment)
    else:
        project = open_project(ctx)
        decision = approve(project, ref, user=acting_user(project, user), comment=comment)
    console().print(f"[green]✓[/] {decision.user} approved {decision.ref}.")


@models_app.command("reject")
def models_reject(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NAME@V or NAME@alias")],
    comment: Annotated[str, typer.Option(help="Why you reject (required).")],
    user: UserOption = None,
) -> None:
    """Reject a model version: it can no longer be promoted to production."""
    from modelyard.registry.promotion import reject

    if client := remote_client(ctx):
        with client:
            decision = client.reject(*version_number(client, ref), comment=comment)
    else:
        project = open_project(ctx)
        decision = reject(project, ref, user=acting_user(project, user), comment=comment)
    console().print(f"[yellow]✗[/] {decision.user} rejected {decision.ref}: {decision.comment}")


@models_app.command("promote")
def models_promote(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NAME@V or NAME@alias")],
    stage: Annotated[
        str, typer.Option(help="production | staging | archived (or none, to demote).")
    ] = "production",
    override: Annotated[
        str | None,
        typer.Option(help="Admins only: promote despite failed gates, for this reason."),
    ] = None,
    reason: Annotated[str | None, typer.Option(help="Why (required to demote or archive).")] = None,
    user: UserOption = None,
) -> None:
    """Move a version to a stage; production checks gates, approvals and roles."""
    from modelyard.registry.promotion import set_stage

    if client := remote_client(ctx):
        if stage not in ("staging", "production"):
            raise InvalidInputError(
                f"The server API promotes to staging or production only; to move {ref} to "
                f"{stage}, run the command on the server's project (unset MODELYARD_URL)."
            )
        with client:
            name, version = version_number(client, ref)
            moved = client.promote(name, version, stage, override_reason=override)
    else:
        project = open_project(ctx)
        moved = set_stage(
            project,
            ref,
            stage,
            user=acting_user(project, user),
            reason=reason,
            override_reason=override,
        )
    aliases = f" (aliases: {', '.join(moved.aliases)})" if moved.aliases else ""
    console().print(f"[green]✓[/] {moved.ref} is now in {moved.stage}{aliases}.")


@models_app.command("rollback")
def models_rollback(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The model name.")],
    reason: Annotated[str, typer.Option(help="Why you roll back (required).")],
    user: UserOption = None,
) -> None:
    """Put the previous production version back (operators, admins); champion follows."""
    from modelyard.registry.promotion import rollback

    if client := remote_client(ctx):
        with client:
            restored = client.rollback(name, reason)
    else:
        project = open_project(ctx)
        restored = rollback(project, name, user=acting_user(project, user), reason=reason)
    console().print(f"[green]✓[/] rolled back: {restored.ref} is in production again (champion).")


@models_app.command("alias")
def models_alias(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The model name.")],
    alias: Annotated[str, typer.Argument(help="The alias, e.g. challenger.")],
    version: Annotated[int, typer.Argument(help="The version number to point at.")],
    user: UserOption = None,
) -> None:
    """Point an alias at a version (champion moves only with `models promote`)."""
    from modelyard.registry.promotion import move_alias

    project = open_project(ctx)
    moved = move_alias(project, name, alias, version, user=acting_user(project, user))
    console().print(f"[green]✓[/] {name}@{alias} → {moved.ref}")


@models_app.command("lineage")
def models_lineage(
    ctx: typer.Context, ref: Annotated[str, typer.Argument(help="NAME, NAME@V or NAME@alias")]
) -> None:
    """Dataset versions → run → model version → deployments."""
    from modelyard.registry.versions import model_lineage

    found = model_lineage(open_project(ctx), ref)
    table(
        "Data",
        ("dataset", "version", "role", "sha256"),
        [
            (i["dataset"], str(i["version"]), i["role"], i["content_hash"][:12])
            for i in found.inputs
        ],
    )
    run = found.run
    run_text = f"{run['name']} ({run['id']}, {run['status']})" if run else "- (no run recorded)"
    console().print(f"[bold]Run:[/] {run_text}")
    m = found.version
    console().print(
        f"[bold]Model:[/] {m.ref} · stage {m.stage} · aliases {', '.join(m.aliases) or '-'}"
    )
    deployed = ", ".join(f"{d['name']} ({d['status']})" for d in found.deployments)
    console().print(f"[bold]Deployments:[/] {deployed or '-'}")


@models_app.command("import")
def models_import(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The model name to register under.")],
    path: Annotated[Path, typer.Argument(help="The model file.")],
    flavor: Annotated[
        str,
        typer.Option(
            help="lightgbm (text model) | xgboost (JSON/UBJSON model) | sklearn (skops file) "
            "| onnx (ONNX graph)."
        ),
    ],
    signature: Annotated[
        str | None,
        typer.Option(
            help="Data describing the model's inputs: a CSV/Parquet file or NAME@V "
            "(default: what the model itself says)."
        ),
    ] = None,
    task: Annotated[
        str | None,
        typer.Option(help="binary | multiclass | regression (default: the model's own)."),
    ] = None,
    target: Annotated[
        str | None, typer.Option(help="The target column, never a feature (default: the spec's).")
    ] = None,
    threshold: Annotated[float, typer.Option(help="Binary decision threshold.")] = 0.5,
    alias: Annotated[
        list[str] | None, typer.Option("--alias", help="Alias to point at it (repeatable).")
    ] = None,
    user: UserOption = None,
) -> None:
    """Register a model trained elsewhere; it is checked before it is registered."""
    from modelyard.registry.imports import import_model

    if url := server_url(ctx):
        raise InvalidInputError(
            f"`modelyard models import` reads a model file on this machine into the local "
            f"project, not through the server at {url}. Unset MODELYARD_URL (and drop --url), "
            "and run it where the project's store is."
        )
    project = open_project(ctx)
    with console().status(f"Importing {path.name}: loading, checking, exporting to ONNX…"):
        imported = import_model(
            project,
            name,
            path,
            flavor=flavor,
            signature=signature,
            task=task,
            target=target,
            threshold=threshold,
            created_by=acting_user(project, user),
            aliases=tuple(alias or ()),
        )
    print_import(path, imported)


def print_import(path: Path, imported: ImportedModel) -> None:
    from rich.markup import escape

    out = console()
    m = imported.version
    aliases = f" (aliases: {', '.join(m.aliases)})" if m.aliases else ""
    out.print(
        f"[green]✓[/] Imported {escape(path.name)} as [bold]{m.ref}[/]{aliases}: {m.flavor}, "
        f"{imported.task}, bundle sha256 {m.digest[:12]}"
    )
    fields = imported.encoder.fields
    kinds = {kind: sum(f.kind == kind for f in fields) for kind in ("number", "category")}
    out.print(
        f"[bold]Signature[/] from {escape(imported.signature_source)}: {len(fields)} features "
        f"({kinds['number']} number, {kinds['category']} category); scores checked on "
        f"{imported.rows_checked:,} rows"
    )
    if len(fields) <= 30:
        table(
            "Features",
            ("name", "kind", "nullable", "categories"),
            [
                (f.name, f.kind, "yes" if f.nullable else "no", str(len(f.categories) or "-"))
                for f in fields
            ],
        )
    kept = imported.onnx_max_abs_diff is not None
    out.print(f"[bold]ONNX twin:[/] {'' if kept else 'none: '}{escape(imported.onnx_note)}")
    out.print(f"Next: modelyard evaluate {m.ref} --data NAME@V, to measure its gates.")
