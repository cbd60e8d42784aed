"""``modelyard monitor log MODEL``: the latest rows of a model's prediction log, and where it is.

    modelyard monitor log loans --since 1h --limit 20

Shows the newest rows first: when, request id, version, latency, the inputs
as logged (PII hashed or absent) and the outputs.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

import typer

from modelyard.cli._common import console, open_project
from modelyard.errors import InvalidInputError

if TYPE_CHECKING:
    import pyarrow as pa

FIRST = ("ts", "request_id", "row", "version", "latency_ms")
LAST = ("score", "label", "confidence")
HIDDEN = frozenset({"model"})
HEX = frozenset("0123456789abcdef")


def log_command(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="The model's registered name.")],
    since: Annotated[
        str, typer.Option("--since", help="How far back to look: 30m, 1h, 2d, ...")
    ] = "1h",
    limit: Annotated[int, typer.Option("--limit", min=1, help="How many rows to show.")] = 20,
) -> None:
    """Print the latest logged predictions of MODEL and the log's location."""
    from modelyard.monitor.log_files import model_folder, predictions_root, read_predictions
    from modelyard.spec import parse_duration

    try:
        seconds = parse_duration(since)
    except ValueError as exc:
        raise InvalidInputError(f"--since {exc}.") from None
    project = open_project(ctx)
    try:
        settings = project.spec.monitoring.log
        root = predictions_root(project)
        started = datetime.now(UTC) - timedelta(seconds=seconds)
        table = read_predictions(root, model, since=started)
    finally:
        project.close()
    out = console()
    total = table.num_rows
    if total:
        _print(_latest(table, limit), f"{model}: the latest {min(limit, total)} of {total} rows")
    else:
        out.print(f"No predictions of '{model}' logged in the last {since}.")
    out.print(f"Log: {model_folder(root, model)}")
    if not settings.enabled:
        out.print("Logging is off in this spec (monitoring.log.enabled: false).")


def _latest(table: pa.Table, limit: int) -> pa.Table:
    order = [("ts", "descending"), ("request_id", "ascending"), ("row", "ascending")]
    return table.sort_by(order).slice(0, limit)


def _print(table: pa.Table, title: str) -> None:
    from rich.markup import escape
    from rich.table import Table

    names = [n for n in table.column_names if n not in HIDDEN]
    inputs = [n for n in names if n not in FIRST and n not in LAST]
    ordered = [n for n in FIRST if n in names] + inputs + [n for n in LAST if n in names]
    shown = Table(title=escape(title))
    for name in ordered:
        shown.add_column(escape(name), justify="right" if name in ("row", "version") else "left")
    columns = {name: table.column(name).to_pylist() for name in ordered}
    for i in range(table.num_rows):
        shown.add_row(*(escape(_cell(columns[name][i])) for name in ordered))
    console().print(shown)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, str) and len(value) == 64 and HEX.issuperset(value):
        return value[:12] + "…"  # a PII digest: its start is enough to tell digests apart
    return str(value)
