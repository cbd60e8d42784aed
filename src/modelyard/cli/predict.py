"""``modelyard predict``: score a file with a registered model (batch scoring)."""

from __future__ import annotations

import typer


def predict_command(ctx: typer.Context) -> None:
    """Score a Parquet or CSV file with a registered model (not available yet)."""
    raise typer.Exit(2)
