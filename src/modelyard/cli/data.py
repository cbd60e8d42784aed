"""``modelyard data …``: datasets and their versions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from modelyard.cli._common import console, open_project, sub_app, table, when

data_app = sub_app("Datasets and their versions.")


@data_app.command("add")
def data_add(
    ctx: typer.Context,
    name: str,
    path: Path,
    kind: Annotated[str, typer.Option(help="raw | clean | features")] = "raw",
) -> None:
    """Register a CSV or Parquet file as a new version of dataset NAME."""
    from modelyard.data.datasets import add_dataset

    version = add_dataset(open_project(ctx), name, path, kind=kind)
    console().print(
        f"[green]✓[/] {version.ref}: {version.n_rows:,} rows × {version.n_columns} "
        f"columns (sha256 {version.content_hash[:12]})."
    )


@data_app.command("list")
def data_list(ctx: typer.Context) -> None:
    """List datasets and their versions."""
    from modelyard.data.datasets import list_datasets

    rows = [
        (v.ref, v.kind, f"{v.n_rows:,}", str(v.n_columns), v.content_hash[:12], when(v.created_at))
        for v in list_datasets(open_project(ctx))
    ]
    table("Datasets", ("version", "kind", "rows", "columns", "sha256", "created"), rows)
