"""Batch scoring on Ray Data: ``score_file_ray``, the ``--engine ray`` of ``modelyard predict``.

Ray Data reads the file (``read_parquet`` / ``read_csv``); ``map_batches`` runs the local
engine's ``ChunkScorer`` on each batch, one CPU and one scoring thread per task, so the
tasks fill the cluster without oversubscribing it; this process writes the results as the
local engine does (finished chunks as parts, then one file), so both engines give the same
files: the same rows, ``row`` numbers, scores and rejects, in input order.

Ray Data hands a task no row numbers. So a task returns one row per input row (its scores,
or the reasons it was rejected), Ray keeps the order (``preserve_order``), and this process
numbers the rows as they come back.

A Ray run always starts from the first row (Ray Data cannot start reading at a row). It
keeps its finished chunks under the local engine's key, so an interrupted Ray run can be
finished with ``--engine local``. Ray is connected as the search engine does it: the
cluster at ``RAY_ADDRESS``, else a local instance with one worker per CPU.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from modelyard import ray_cluster
from modelyard.errors import ServingError
from modelyard.serve.batch import DEFAULT_CHUNK_ROWS, BatchResult, Progress, Tally, output_paths
from modelyard.serve.batch_input import InputFile, ParquetInput, open_input
from modelyard.serve.batch_parts import PartsDir, run_key
from modelyard.serve.batch_scorer import REJECT_SCHEMA, ChunkResult, ChunkScorer
from modelyard.train.bundle import ModelBundle

REJECTED = "_rejected"  # per row: a list of {field, reason}, empty for a scored row


def score_file_ray(
    bundle: ModelBundle,
    input_path: str | Path,
    output_path: str | Path,
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    rejects_path: str | Path | None = None,
    keep_columns: Sequence[str] = (),
    on_progress: Progress | None = None,
) -> BatchResult:
    """``score_file`` with Ray Data doing the reading and the scoring; same output files."""
    started = time.perf_counter()
    scorer = ChunkScorer(bundle, keep_columns, threads=1)
    source = open_input(input_path, scorer, chunk_rows)  # checks the columns before Ray starts
    output, rejects = output_paths(source.path, output_path, rejects_path)
    parts = PartsDir(output)
    parts.prepare(run_key(source, scorer, chunk_rows), resume=False)
    tally = Tally(source.rows_total, on_progress)
    chunks = 0
    with ray_session() as ray:
        for chunks, batch in enumerate(_scored_batches(ray, source, scorer), start=1):
            result = unpack(batch, (chunks - 1) * chunk_rows)
            parts.write(chunks - 1, result, rows_in=batch.num_rows)
            tally.add((batch.num_rows, result.scores.num_rows, result.rows_rejected))
            tally.report(tally.rows_in / source.rows_total if source.rows_total else 0.0)
    if chunks == 0:  # an empty file: one empty chunk gives the files their columns
        parts.write(0, scorer(source.schema.empty_table().select(scorer.columns), 0), rows_in=0)
        chunks = 1
    parts.mark_complete(chunks)
    parts.merge(chunks, output, rejects)
    return tally.result(
        chunks, output, rejects, seconds=time.perf_counter() - started, started_over=False
    )


def _scored_batches(ray: Any, source: InputFile, scorer: ChunkScorer) -> Iterator[pa.Table]:
    """The packed results, in input order, in batches of exactly ``chunk_rows`` rows."""
    with _quiet_ordered_context(ray):
        if isinstance(source, ParquetInput):
            dataset = ray.data.read_parquet(str(source.path)).select_columns(scorer.columns)
        else:
            convert = pacsv.ConvertOptions(
                column_types=dict.fromkeys(scorer.inputs, pa.string()),
                strings_can_be_null=True,
                include_columns=scorer.columns,
            )
            dataset = ray.data.read_csv(str(source.path), convert_options=convert)
        scored = dataset.map_batches(
            score_packed,
            fn_args=(scorer,),
            batch_format="pyarrow",
            batch_size=source.chunk_rows,
            num_cpus=1,
            zero_copy_batch=True,
        )
        yield from scored.iter_batches(batch_size=source.chunk_rows, batch_format="pyarrow")


@contextmanager
def _quiet_ordered_context(ray: Any) -> Iterator[None]:
    """Ray Data in input order, without its progress bars and tuning hints (the caller
    shows progress); the settings are put back afterwards."""
    with warnings.catch_warnings():  # the context warns about Ray's own deprecated fields
        warnings.simplefilter("ignore", DeprecationWarning)
        context = ray.data.DataContext.get_current()
    logger = logging.getLogger("ray.data")
    saved = (context.execution_options.preserve_order, context.enable_progress_bars, logger.level)
    context.execution_options.preserve_order = True
    context.enable_progress_bars = False
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        context.execution_options.preserve_order, context.enable_progress_bars = saved[:2]
        logger.setLevel(saved[2])


def score_packed(batch: pa.Table, scorer: ChunkScorer) -> pa.Table:
    """In a Ray task: score ``batch`` and return one row per input row (see ``pack``)."""
    return pack(scorer(batch, 0), batch.num_rows)


def pack(result: ChunkResult, rows: int) -> pa.Table:
    """A chunk's result as one row per input row: the scores (null for a rejected row)
    and the list of ``{field, reason}`` that rejected it (empty for a scored row)."""
    scored = result.scores.column("row").to_numpy()
    where = np.full(rows, -1, dtype=np.int64)
    where[scored] = np.arange(len(scored))
    body = result.scores.drop_columns(["row"]).take(pa.array(where, mask=where < 0))
    rejects = result.rejects.combine_chunks()
    per_row = np.bincount(rejects.column("row").to_numpy(), minlength=rows)
    offsets = np.concatenate([[0], np.cumsum(per_row)]).astype(np.int32)
    reasons = pa.StructArray.from_arrays(
        [rejects.column("field").chunk(0), rejects.column("reason").chunk(0)]
        if rejects.num_rows
        else [pa.array([], pa.string()), pa.array([], pa.string())],
        names=["field", "reason"],
    )
    return body.append_column(REJECTED, pa.ListArray.from_arrays(pa.array(offsets), reasons))


def unpack(batch: pa.Table, first_row: int) -> ChunkResult:
    """The inverse of ``pack`` for rows numbered from ``first_row``."""
    problems = batch.column(REJECTED)
    lengths = pc.list_value_length(problems).to_numpy()
    ok = lengths == 0
    rows = np.arange(first_row, first_row + batch.num_rows, dtype=np.int64)
    scores = batch.drop_columns([REJECTED]).filter(pa.array(ok))
    scores = scores.add_column(0, "row", pa.array(rows[ok]))
    flat = pc.list_flatten(problems)
    parents = pc.list_parent_indices(problems).to_numpy().astype(np.int64)
    rejects = pa.table(
        [
            pa.array(parents + first_row, pa.int64()),
            pc.struct_field(flat, "field"),
            pc.struct_field(flat, "reason"),
        ],
        schema=REJECT_SCHEMA,
    )
    return ChunkResult(scores, rejects)


def ray_session() -> AbstractContextManager[Any]:
    """Ray for batch scoring: ``modelyard.ray_cluster.ray_session`` with its errors."""
    return ray_cluster.ray_session(ServingError, "score with --engine local")
