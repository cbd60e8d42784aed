"""``modelyard predict``: score a Parquet or CSV file with a registered model (batch scoring).

A thin layer over ``modelyard.serve.batch.score_file`` (and ``batch_ray.score_file_ray``
for ``--engine ray``): it resolves the model, shows a progress bar over the input and
prints where the scores and the rejects went. Ctrl-C keeps the finished chunks; the same
command run again resumes. The local engine writes the scored rows to the prediction log
(``PredictionLog.log_scored``) unless the spec turns it off; Ray's does not yet.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from modelyard.cli._common import console

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa
    from rich.console import Console

    from modelyard.serve.batch import BatchProgress, BatchResult, OnScored
    from modelyard.serve.model import ServedModel

ENGINES = ("local", "ray")
#: The same default as ``modelyard.serve.batch.DEFAULT_CHUNK_ROWS`` (not imported: pyarrow).
CHUNK_ROWS = 100_000


def predict_command(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="The model: NAME, NAME@V or NAME@alias.")],
    input_path: Annotated[
        Path,
        typer.Option("--input", "-i", help="The rows to score: .parquet or .csv (.csv.gz too)."),
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="The Parquet file to write the scores to.")
    ],
    rejects: Annotated[
        Path | None,
        typer.Option(
            help="Where rows that fail validation go, with the reasons "
            "(default: next to the output, as STEM.rejects.parquet)."
        ),
    ] = None,
    chunk_rows: Annotated[
        int, typer.Option(min=1, help="Rows read, validated and scored at a time.")
    ] = CHUNK_ROWS,
    keep: Annotated[
        str | None,
        typer.Option(help="Input columns to copy into the output, comma-separated (an id)."),
    ] = None,
    engine: Annotated[str, typer.Option(help="Where to score: local | ray (Ray Data).")] = "local",
    resume: Annotated[
        bool,
        typer.Option(
            "--resume/--no-resume",
            help="Continue an interrupted run on the same input and model (local engine).",
        ),
    ] = True,
) -> None:
    """Score a Parquet or CSV file with a registered model, in chunks of bounded memory."""
    from rich.markup import escape

    from modelyard.errors import InvalidInputError
    from modelyard.monitor.predlog import PredictionLog
    from modelyard.project import Project
    from modelyard.serve.model import served_from
    from modelyard.spec import find_spec

    if engine not in ENGINES:
        raise InvalidInputError(f"--engine must be one of {', '.join(ENGINES)}; got {engine!r}.")
    keep_columns = [c.strip() for c in (keep or "").split(",") if c.strip()]
    spec = find_spec(explicit=(ctx.obj or {}).get("spec")).resolve()
    project = Project.open(spec)
    try:  # one opening of the project for the model and its log
        served = served_from(project, ref, runtime="native")  # batch scores the bundle itself
        local = engine == "local"
        prediction_log = PredictionLog.for_project(project, served.name) if local else None
    finally:
        project.close()
    out = console()
    out.print(
        f"Scoring [bold]{escape(str(input_path))}[/] with {served.name}@{served.version} "
        f"({served.bundle.task}) on the {engine} engine"
    )
    on_scored = None
    if prediction_log is not None:
        job = f"batch-{secrets.token_hex(4)}"

        def on_scored(inputs: pa.Table, scores: np.ndarray, chunk: int) -> None:
            task = served.bundle.task
            prediction_log.log_scored(served, task, inputs, scores, f"{job}-{chunk:06d}")

    with _ProgressBar(out, input_path.name) as bar:
        try:
            result = _run(
                served,
                input_path,
                output,
                rejects,
                chunk_rows,
                keep_columns,
                engine,
                resume,
                bar,
                on_scored,
            )
        except KeyboardInterrupt:
            bar.stop()
            again = "the same command" + (" with --engine local" if engine == "ray" else "")
            out.print(f"[yellow]Interrupted.[/] Finished chunks are kept; run {again} to resume.")
            raise typer.Exit(130) from None
        finally:
            if prediction_log is not None:
                prediction_log.close()
    print_result(out, served, result)
    if prediction_log is not None:
        logged = prediction_log.stats()
        out.print(f"Prediction log: {logged['written']:,} rows written ({job}-*)")


def _run(
    served: ServedModel,
    input_path: Path,
    output: Path,
    rejects: Path | None,
    chunk_rows: int,
    keep_columns: list[str],
    engine: str,
    resume: bool,
    bar: _ProgressBar,
    on_scored: OnScored | None,
) -> BatchResult:
    if engine == "ray":
        from modelyard.serve.batch_ray import score_file_ray

        return score_file_ray(
            served.bundle,
            input_path,
            output,
            chunk_rows=chunk_rows,
            rejects_path=rejects,
            keep_columns=keep_columns,
            on_progress=bar.update,
        )
    from modelyard.serve.batch import score_file

    return score_file(
        served.bundle,
        input_path,
        output,
        chunk_rows=chunk_rows,
        rejects_path=rejects,
        keep_columns=keep_columns,
        resume=resume,
        on_progress=bar.update,
        on_scored=on_scored,
    )


class _ProgressBar:
    """A Rich bar over the share of the input read, with the rows handled so far."""

    def __init__(self, out: Console, name: str) -> None:
        from rich.progress import (
            BarColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[rows]:,} rows"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        )
        # Not drawn into a pipe or a log, where it would leave a blank line behind.
        self.progress = Progress(*columns, console=out, transient=True, disable=not out.is_terminal)
        self.task = self.progress.add_task(f"scoring {name}", total=1.0, rows=0)

    def __enter__(self) -> _ProgressBar:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self.progress.stop()

    def update(self, progress: BatchProgress) -> None:
        self.progress.update(self.task, completed=progress.fraction, rows=progress.rows_done)


def print_result(out: Console, served: ServedModel, result: BatchResult) -> None:
    """The summary: rows scored and rejected, speed, and where the files are."""
    rate = f"{result.rows_per_second:,.0f} rows/s" if result.seconds > 0 else "-"
    rejected = (
        f"[yellow]{result.rows_rejected:,} rejected[/]" if result.rows_rejected else "none rejected"
    )
    out.print(
        f"[green]✓[/] Scored {result.rows_scored:,} of {result.rows_in:,} rows with "
        f"{served.name}@{served.version}, {rejected}, in {result.seconds:.1f} s ({rate})."
    )
    if result.resumed_chunks:
        out.print(
            f"Resumed an interrupted run: {result.resumed_chunks} of {result.chunks} chunks "
            "were scored before."
        )
    if result.started_over:
        out.print(
            "[yellow]note:[/] an earlier, unfinished run wrote to this output from another "
            "input, model or chunk size; its parts were discarded and this run started over."
        )
    out.print(f"Scores:  {result.output_path}", soft_wrap=True)
    out.print(f"Rejects: {result.rejects_path} (row, field, reason)", soft_wrap=True)
