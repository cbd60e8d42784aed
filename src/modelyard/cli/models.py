"""``modelyard models …``: registered models and versions."""

from __future__ import annotations

from typing import Annotated

import typer

from modelyard.cli._common import console, num, open_project, sub_app, table, when

models_app = sub_app("Registered models and versions.")


@models_app.command("list")
def models_list(ctx: typer.Context) -> None:
    """List registered model versions with aliases and stage."""
    from modelyard.registry.versions import list_models

    rows = [
        (m.ref, ", ".join(m.aliases), m.stage, m.flavor, m.run_id or "", when(m.created_at))
        for m in list_models(open_project(ctx))
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
    table("Metrics", ("name", "value"), [(k, num(v)) for k, v in sorted(m.metrics.items())])
    table(
        "Gates",
        ("gate", "value", "result"),
        [(g["name"], num(g["value"]), "pass" if g["passed"] else "FAIL") for g in m.gates],
    )
