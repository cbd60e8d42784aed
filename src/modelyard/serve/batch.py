"""Batch scoring: a Parquet or CSV file in, a Parquet file of scores out, in bounded memory.

    score_file(bundle, "in.parquet", "out.parquet")   → BatchResult

The input is streamed in chunks of ``chunk_rows`` rows with pyarrow; it is never loaded
whole. This module runs the local loop; ``serve.batch_ray`` runs the same steps on Ray
Data. Both engines share the parts:

    batch_input    the input file, read chunk by chunk (Parquet, or CSV maybe compressed)
    batch_scorer   one chunk validated, encoded and scored; rejects with their reasons
    batch_parts    finished chunks kept on disk, so that a rerun resumes; the final merge

Output columns: ``row`` (the 0-based input row number), the ``keep_columns``, then the
scores in the serving convention — binary: ``probability`` and ``label`` (1 when
``probability >= threshold``); multiclass: ``probability_<class>`` per class and ``label``
(the class name); regression: ``prediction``. Rejects go to their own Parquet file
(``row``, ``field``, ``reason``; one line per bad field), written even when empty.

Prediction log: ``on_scored(inputs, scores, chunk)`` is called with each scored chunk's
input columns and scores (``modelyard predict`` logs them, as the server does).

Resume: a rerun on the same input, model, threshold, chunk size and kept columns skips the
chunks an interrupted run finished; any other run starts over (``BatchResult.started_over``).

Threads: LightGBM models score with LightGBM's default thread count (one per core), since a
batch job owns the machine; the server scores on one thread per worker instead. Reading is
not overlapped with scoring: LightGBM already keeps every core busy, and a reader thread
made runs slower on two cores (median of ten interleaved runs: 0.83 of the raw model's rows/s
with one, 0.93 without).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from modelyard.errors import InvalidInputError
from modelyard.serve.batch_input import InputFile, ParquetInput, open_input
from modelyard.serve.batch_parts import PartsDir, run_key
from modelyard.serve.batch_scorer import (
    NOT_A_NUMBER,
    NOT_FINITE,
    REJECT_SCHEMA,
    REQUIRED,
    ChunkResult,
    ChunkScorer,
)
from modelyard.train.bundle import ModelBundle

# The entry point: the parts' names that callers use are importable from here too.
__all__ = [
    "DEFAULT_CHUNK_ROWS",
    "NOT_A_NUMBER",
    "NOT_FINITE",
    "REJECT_SCHEMA",
    "REQUIRED",
    "BatchProgress",
    "BatchResult",
    "ChunkResult",
    "ChunkScorer",
    "InputFile",
    "ParquetInput",
    "PartsDir",
    "Progress",
    "Tally",
    "open_input",
    "output_paths",
    "run_key",
    "score_file",
]

DEFAULT_CHUNK_ROWS = 100_000


@dataclass(frozen=True)
class BatchProgress:
    """Where a run stands: input rows handled (scored, rejected or resumed) so far."""

    rows_done: int
    rows_total: int | None  # known up front for Parquet, not for CSV
    fraction: float  # of the input read, in [0, 1]
    chunks_done: int


@dataclass(frozen=True)
class BatchResult:
    """What a batch run did, and where its files are."""

    rows_in: int
    rows_scored: int
    rows_rejected: int
    chunks: int
    resumed_chunks: int
    seconds: float
    output_path: Path
    rejects_path: Path
    started_over: bool = False  # parts of a run on another input or model were discarded
    rows_resumed: int = 0  # rows of the chunks an interrupted run had finished

    @property
    def rows_per_second(self) -> float:
        """Input rows handled per second by this run (resumed chunks not counted)."""
        done = self.rows_in - self.rows_resumed
        return done / self.seconds if self.seconds > 0 else float("nan")


Progress = Callable[[BatchProgress], None]
OnScored = Callable[[pa.Table, np.ndarray, int], None]
"""``on_scored(inputs, scores, chunk)``: a chunk's scored rows, as they were scored."""


def score_file(
    bundle: ModelBundle,
    input_path: str | Path,
    output_path: str | Path,
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    rejects_path: str | Path | None = None,
    keep_columns: Sequence[str] = (),
    resume: bool = True,
    threads: int | None = None,
    on_progress: Progress | None = None,
    on_scored: OnScored | None = None,
) -> BatchResult:
    """Score every row of ``input_path`` into ``output_path``; see the module docstring.

    ``threads`` caps LightGBM's threads (default: one per core). An exception from
    ``on_progress`` (or Ctrl-C) stops the run; rerunning the same call resumes it.
    """
    started = time.perf_counter()
    scorer = ChunkScorer(bundle, keep_columns, threads=threads)
    source = open_input(input_path, scorer, chunk_rows)
    output, rejects = output_paths(source.path, output_path, rejects_path)
    parts = PartsDir(output)
    started_over = parts.prepare(run_key(source, scorer, chunk_rows), resume=resume)
    tally = Tally(source.rows_total, on_progress)
    finished = parts.finished()
    for n in sorted(finished):
        tally.add(parts.counts(n), resumed=True)
    tally.report(source.fraction(tally.rows_in))
    chunks = parts.total_chunks()
    if chunks is None or len(finished) < chunks:
        chunks = _score_chunks(scorer, source, parts, finished, tally, on_scored)
        parts.mark_complete(chunks)
    parts.merge(chunks, output, rejects)
    seconds = time.perf_counter() - started
    return tally.result(chunks, output, rejects, seconds=seconds, started_over=started_over)


def output_paths(
    input_path: Path, output_path: str | Path, rejects_path: str | Path | None
) -> tuple[Path, Path]:
    """The scores file and the rejects file (default ``<output stem>.rejects.parquet``)."""
    output = Path(output_path).resolve()
    if output.suffix.lower() in (".csv", ".json"):
        raise InvalidInputError(
            f"Scores are written as Parquet; name the output '{output.stem}.parquet', "
            f"not '{output.name}'."
        )
    rejects = (
        Path(rejects_path).resolve()
        if rejects_path is not None
        else output.with_name(f"{output.stem}.rejects.parquet")
    )
    if len({input_path, output, rejects}) < 3:
        raise InvalidInputError(
            f"The input, the output and the rejects file must be three different files; "
            f"got {input_path}, {output} and {rejects}."
        )
    output.parent.mkdir(parents=True, exist_ok=True)
    rejects.parent.mkdir(parents=True, exist_ok=True)
    return output, rejects


class Tally:
    """Running counts of a run (both engines), passed to the progress callback."""

    def __init__(self, rows_total: int | None, on_progress: Progress | None) -> None:
        self.rows_total = rows_total
        self.on_progress = on_progress
        self.rows_in = self.rows_scored = self.rows_rejected = 0
        self.chunks = self.resumed = self.rows_resumed = 0

    def add(self, counts: tuple[int, int, int], *, resumed: bool = False) -> None:
        self.rows_in += counts[0]
        self.rows_scored += counts[1]
        self.rows_rejected += counts[2]
        self.chunks += 1
        if resumed:
            self.resumed += 1
            self.rows_resumed += counts[0]

    def report(self, fraction: float) -> None:
        if self.on_progress is not None:
            progress = BatchProgress(self.rows_in, self.rows_total, fraction, self.chunks)
            self.on_progress(progress)

    def result(
        self, chunks: int, output: Path, rejects: Path, *, seconds: float, started_over: bool
    ) -> BatchResult:
        """The run's summary, once its ``chunks`` are merged into ``output`` and ``rejects``."""
        return BatchResult(
            rows_in=self.rows_in,
            rows_scored=self.rows_scored,
            rows_rejected=self.rows_rejected,
            chunks=chunks,
            resumed_chunks=self.resumed,
            seconds=seconds,
            output_path=output,
            rejects_path=rejects,
            started_over=started_over,
            rows_resumed=self.rows_resumed,
        )


def _score_chunks(
    scorer: ChunkScorer,
    source: InputFile,
    parts: PartsDir,
    finished: set[int],
    tally: Tally,
    on_scored: OnScored | None,
) -> int:
    """Score and write every chunk not ``finished``; returns how many chunks the input has."""
    first = chunks = next(n for n in itertools.count() if n not in finished)  # all before: done
    for n, chunk in source.chunks(first=first):
        chunks = n + 1
        if n in finished:
            continue
        result = scorer(chunk, n * source.chunk_rows)
        parts.write(n, result, rows_in=chunk.num_rows)
        if on_scored is not None and result.inputs is not None and result.raw is not None:
            on_scored(result.inputs, result.raw, n)
        tally.add((chunk.num_rows, result.scores.num_rows, result.rows_rejected))
        tally.report(source.fraction(tally.rows_in))
    return chunks
