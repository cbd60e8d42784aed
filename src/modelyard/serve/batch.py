"""Batch scoring: a Parquet or CSV file in, a Parquet file of scores out, in bounded memory.

    score_file(bundle, "in.parquet", "out.parquet")   → BatchResult

The input is streamed in chunks of ``chunk_rows`` rows with pyarrow; it is never loaded
whole. ``ChunkScorer`` handles one chunk, the same way for both engines (this module's
local loop and ``serve.batch_ray``):

1. validate column by column, without a loop over rows: text or ±inf in a number field,
   or a null where the model allows none (checked after the cleaning recipe, as serving
   checks it), rejects the row. A reject records the input row number, the field and the
   reason — never the value, which may be sensitive;
2. replay the recipe and the encoder (``ModelBundle.encode_frame``'s two steps) and score
   the rows that pass with one ``predict`` call.

Output columns: ``row`` (the 0-based input row number), the ``keep_columns``, then the
scores in the serving convention — binary: ``probability`` and ``label`` (1 when
``probability >= threshold``); multiclass: ``probability_<class>`` per class and ``label``
(the class name); regression: ``prediction``. Rejects go to their own Parquet file
(``row``, ``field``, ``reason``; one line per bad field), written even when empty.

Resume: each finished chunk is written atomically to ``<output>.parts/part-<n>.parquet``,
its rejects beside it, under a state file keyed by the input (path, size, mtime), the model,
the threshold, the chunk size and the kept columns. A rerun with the same key skips the
finished chunks; any other key starts over (``BatchResult.started_over``). At the end the
parts are streamed into ``output`` (one row group per chunk) and the parts folder goes.

Threads: LightGBM models score with LightGBM's default thread count (one per core), since a
batch job owns the machine; the server scores on one thread per worker instead. Reading is
not overlapped with scoring: LightGBM already keeps every core busy, and a reader thread
made runs slower on two cores (median of ten interleaved runs: 0.83 of the raw model's rows/s
with one, 0.93 without).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from modelyard.errors import ArtifactError, DataError, InvalidInputError
from modelyard.train.bundle import ModelBundle
from modelyard.train.flavors import LightGBMScorer

DEFAULT_CHUNK_ROWS = 100_000
PARQUET_BUFFER = 1 << 20
REJECT_SCHEMA = pa.schema([("row", pa.int64()), ("field", pa.string()), ("reason", pa.string())])
NOT_A_NUMBER = "expected a number, got text"
A_BOOLEAN = "expected a number, got a boolean"
NOT_FINITE = "expected a finite number"
REQUIRED = "required: this field may not be null"
CSV_SUFFIXES = {".csv": None, ".gz": "gzip", ".bz2": "bz2", ".zst": "zstd"}


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


@dataclass(frozen=True)
class ChunkResult:
    """A scored chunk: its output rows, and one reject line per bad field."""

    scores: pa.Table
    rejects: pa.Table

    @property
    def rows_rejected(self) -> int:
        return len(np.unique(self.rejects.column("row").to_numpy()))


Progress = Callable[[BatchProgress], None]


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
        chunks = _score_chunks(scorer, source, parts, finished, tally)
        parts.mark_complete(chunks)
    parts.merge(chunks, output, rejects)
    return BatchResult(
        rows_in=tally.rows_in,
        rows_scored=tally.rows_scored,
        rows_rejected=tally.rows_rejected,
        chunks=chunks,
        resumed_chunks=tally.resumed,
        seconds=time.perf_counter() - started,
        output_path=output,
        rejects_path=rejects,
        started_over=started_over,
        rows_resumed=tally.rows_resumed,
    )


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


def run_key(source: InputFile, scorer: ChunkScorer, chunk_rows: int) -> dict[str, Any]:
    """What must not change between a run and its resumption."""
    stat = source.path.stat()
    return {
        "input": str(source.path),
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "model": model_identity(scorer.bundle),
        "threshold": scorer.bundle.threshold,
        "chunk_rows": chunk_rows,
        "keep_columns": list(scorer.keep_columns),
    }


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


def _score_chunks(
    scorer: ChunkScorer, source: InputFile, parts: PartsDir, finished: set[int], tally: Tally
) -> int:
    """Score and write every chunk not ``finished``; returns how many chunks the input has."""
    first = chunks = next(n for n in itertools.count() if n not in finished)  # all before: done
    for n, chunk in source.chunks(first=first):
        chunks = n + 1
        if n in finished:
            continue
        result = scorer(chunk, n * source.chunk_rows)
        parts.write(n, result, rows_in=chunk.num_rows)
        tally.add((chunk.num_rows, result.scores.num_rows, result.rows_rejected))
        tally.report(source.fraction(tally.rows_in))
    return chunks


# --------------------------------------------------------------------------- one chunk


class ChunkScorer:
    """Validates, encodes and scores one chunk of input rows (both engines call this)."""

    def __init__(
        self, bundle: ModelBundle, keep_columns: Sequence[str] = (), *, threads: int | None = None
    ) -> None:
        self.bundle = bundle
        self.keep_columns = tuple(dict.fromkeys(keep_columns))
        self.threads = threads
        fields = {f.name: f for f in bundle.encoder.fields}
        self.inputs = list(bundle.input_names)
        self.numbers = [n for n in self.inputs if n in fields and fields[n].kind == "number"]
        self.required = [f.name for f in bundle.encoder.fields if not f.nullable]
        self.columns = list(dict.fromkeys([*self.inputs, *self.keep_columns]))
        clash = set(self.keep_columns) & {"row", *score_names(bundle)}
        if clash:
            raise InvalidInputError(
                f"Cannot keep column(s) {sorted(clash)}: the output has columns of those "
                "names. Rename them in the input, or keep other columns."
            )

    def check_schema(self, schema: pa.Schema, where: str) -> None:
        """Fail before any work if the file lacks a column or holds one of the wrong kind."""
        missing = [c for c in self.inputs if c not in schema.names]
        if missing:
            raise DataError(
                f"{where} lacks the column(s) {missing} that the model needs "
                f"(it needs {self.inputs}). Add them, or score another file."
            )
        absent = [c for c in self.keep_columns if c not in schema.names]
        if absent:
            shown = ", ".join(schema.names[:20]) + (", …" if len(schema.names) > 20 else "")
            raise InvalidInputError(
                f"Cannot keep column(s) {absent}: {where} has no such column. Its columns: {shown}."
            )
        for name in self.numbers:
            kind = schema.field(name).type
            if not (_is_numeric(kind) or _is_text(kind) or pa.types.is_boolean(kind)):
                raise DataError(
                    f"Column '{name}' of {where} holds {kind} values; the model needs numbers. "
                    "Convert the column, or score another file."
                )

    def __call__(self, chunk: pa.Table, first_row: int) -> ChunkResult:
        """Score ``chunk``, whose first row is input row ``first_row``."""
        return self.score(self.prepare(chunk, first_row))

    def prepare(self, chunk: pa.Table, first_row: int) -> PreparedChunk:
        """Validate ``chunk`` and encode the rows that pass."""
        frame, problems = self._frame(chunk)
        if self.bundle.recipe is not None:
            frame = self.bundle.recipe.transform(frame, filter_rows=False)
        problems += self._nulls(frame, problems)
        bad = np.zeros(chunk.num_rows, dtype=bool)
        for _, _, mask in problems:
            bad |= mask
        ok = np.flatnonzero(~bad) if bad.any() else None
        X = self.bundle.encoder.transform(frame if ok is None else frame.iloc[ok])
        return PreparedChunk(chunk, first_row, X, ok, _rejects(problems, first_row))

    def score(self, prepared: PreparedChunk) -> ChunkResult:
        """Predict the rows that passed, and lay the output table out."""
        chunk, ok, first_row = prepared.chunk, prepared.ok, prepared.first_row
        rows = np.arange(first_row, first_row + chunk.num_rows, dtype=np.int64)
        columns: dict[str, Any] = {"row": rows if ok is None else rows[ok]}
        for name in self.keep_columns:
            kept = chunk.column(name)
            columns[name] = kept if ok is None else kept.take(pa.array(ok))
        columns |= self._score_columns(self._predict(prepared.X))
        return ChunkResult(pa.table(columns), prepared.rejects)

    def _frame(self, chunk: pa.Table) -> tuple[pd.DataFrame, list[Problem]]:
        columns: dict[str, Any] = {}
        problems: list[Problem] = []
        for name in self.inputs:
            column = chunk.column(name)
            if name in self.numbers:
                columns[name], found = _numbers(column)
                problems += [(name, reason, mask) for reason, mask in found]
            else:
                columns[name] = column.to_pandas()
        return pd.DataFrame(columns, copy=False), problems

    def _nulls(self, frame: pd.DataFrame, found: list[Problem]) -> list[Problem]:
        flagged = {name: mask for name, _, mask in found}
        problems: list[Problem] = []
        for name in self.required:
            mask = frame[name].isna().to_numpy()
            if name in flagged:  # its value was refused already; say so once
                mask = mask & ~flagged[name]
            if mask.any():
                problems.append((name, REQUIRED, mask))
        return problems

    def _predict(self, X: np.ndarray) -> np.ndarray:
        if len(X) == 0:  # models refuse empty input; one row gives the output's shape
            return self.bundle.predict(np.full((1, X.shape[1]), np.nan))[:0]
        scorer = self.bundle.scorer
        if isinstance(scorer, LightGBMScorer):  # all cores; the scorer itself uses one
            return np.asarray(scorer.booster.predict(X, num_threads=self.threads or 0))
        return self.bundle.predict(X)

    def _score_columns(self, scores: np.ndarray) -> dict[str, pa.Array]:
        bundle = self.bundle
        if bundle.task == "regression":
            return {"prediction": pa.array(scores, pa.float64())}
        if bundle.task == "binary":
            labels = (scores >= bundle.threshold).astype(np.int64)
            return {"probability": pa.array(scores, pa.float64()), "label": pa.array(labels)}
        classes = _class_names(bundle, scores.shape[1])
        out = {f"probability_{c}": pa.array(scores[:, i]) for i, c in enumerate(classes)}
        winners = np.asarray(classes, dtype=object)[scores.argmax(axis=1)]
        return out | {"label": pa.array(winners, pa.string())}


Problem = tuple[str, str, np.ndarray]  # (field, reason, mask over the chunk's rows)


@dataclass(frozen=True)
class PreparedChunk:
    """A validated, encoded chunk: the matrix of the rows that passed (``ok``; None: all)."""

    chunk: pa.Table
    first_row: int
    X: np.ndarray
    ok: np.ndarray | None
    rejects: pa.Table


def score_names(bundle: ModelBundle) -> list[str]:
    """The score columns of the output, in order."""
    if bundle.task == "regression":
        return ["prediction"]
    if bundle.task == "binary":
        return ["probability", "label"]
    classes = _class_names(bundle, len(bundle.classes or ()))
    return [*(f"probability_{c}" for c in classes), "label"]


def _class_names(bundle: ModelBundle, k: int) -> list[str]:
    return [str(c) for c in bundle.classes] if bundle.classes else [str(i) for i in range(k)]


def _numbers(column: pa.ChunkedArray) -> tuple[np.ndarray, list[tuple[str, np.ndarray]]]:
    """A number field as float64 (NaN for null), and which rows hold something else."""
    kind = column.type
    found: list[tuple[str, np.ndarray]] = []
    if pa.types.is_boolean(kind):
        found.append((A_BOOLEAN, column.is_valid().to_numpy(zero_copy_only=False)))
        return np.full(len(column), np.nan), found
    if _is_text(kind):
        values, text = _parse_numbers(column)
        if text.any():
            found.append((NOT_A_NUMBER, text))
    else:
        values = column.cast(pa.float64()).to_numpy()
    infinite = np.isinf(values)
    if infinite.any():
        found.append((NOT_FINITE, infinite))
    return values, found


def _parse_numbers(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    try:  # the usual case: every value parses, in Arrow's C++ parser
        return column.cast(pa.float64()).to_numpy(), np.zeros(len(column), dtype=bool)
    except pa.ArrowInvalid:
        pass
    strings = column.to_pandas().astype(object)
    values = pd.to_numeric(strings, errors="coerce").to_numpy(np.float64, na_value=np.nan)
    spelled_nan = pc.equal(pc.utf8_lower(pc.utf8_trim_whitespace(column)), "nan")
    named = spelled_nan.to_numpy(zero_copy_only=False)
    text = np.isnan(values) & strings.notna().to_numpy() & ~np.asarray(named, dtype=bool)
    return values, text


def _rejects(problems: list[Problem], first_row: int) -> pa.Table:
    if not problems:
        return REJECT_SCHEMA.empty_table()
    rows = [np.flatnonzero(mask) for _, _, mask in problems]
    order_of = np.concatenate([np.full(len(r), i) for i, r in enumerate(rows)])
    all_rows = np.concatenate(rows)
    order = np.lexsort((order_of, all_rows))  # by row, then in the order found
    names = np.asarray([p[0] for p in problems], dtype=object)[order_of[order]]
    reasons = np.asarray([p[1] for p in problems], dtype=object)[order_of[order]]
    return pa.table(
        [pa.array(all_rows[order] + first_row, pa.int64()), pa.array(names), pa.array(reasons)],
        schema=REJECT_SCHEMA,
    )


def _is_numeric(kind: pa.DataType) -> bool:
    return any(test(kind) for test in (pa.types.is_integer, pa.types.is_floating,
                                       pa.types.is_decimal, pa.types.is_null))  # fmt: skip


def _is_text(kind: pa.DataType) -> bool:
    return any(test(kind) for test in (pa.types.is_string, pa.types.is_large_string,
                                       pa.types.is_string_view))  # fmt: skip


# --------------------------------------------------------------------------- reading


class InputFile:
    """A Parquet or CSV file, read in chunks of exactly ``chunk_rows`` rows (the last fewer)."""

    path: Path
    schema: pa.Schema
    rows_total: int | None

    def __init__(self, path: Path, columns: list[str], chunk_rows: int) -> None:
        self.path = path
        self.columns = columns
        self.chunk_rows = chunk_rows

    def chunks(self, first: int = 0) -> Iterator[tuple[int, pa.Table]]:
        """(n, rows of chunk n) from chunk ``first`` on; at least one, maybe empty, chunk."""
        raise NotImplementedError

    def fraction(self, rows_done: int) -> float:
        raise NotImplementedError

    def _numbered(self, tables: Iterator[pa.Table], first: int) -> Iterator[tuple[int, pa.Table]]:
        empty = True
        for n, table in enumerate(tables, start=first):
            empty = False
            yield n, table
        if empty and first == 0:
            yield 0, self.schema.empty_table().select(self.columns)


def open_input(path: str | Path, scorer: ChunkScorer, chunk_rows: int) -> InputFile:
    """The input file, checked against the model before any row is scored."""
    if chunk_rows < 1:
        raise InvalidInputError(f"chunk_rows must be at least 1; got {chunk_rows}.")
    resolved = Path(path).resolve()
    if not resolved.is_file():
        raise InvalidInputError(f"Input file {resolved} does not exist.")
    suffix = resolved.suffix.lower()
    source: InputFile
    try:
        if suffix in (".parquet", ".pq"):
            source = ParquetInput(resolved, scorer.columns, chunk_rows)
        elif suffix in CSV_SUFFIXES and (suffix == ".csv" or ".csv" in resolved.suffixes):
            source = CsvInput(resolved, scorer, chunk_rows)
        else:
            raise InvalidInputError(
                f"Cannot tell the format of {resolved.name}: name it .parquet or .csv "
                "(.csv.gz, .csv.bz2 and .csv.zst are read too)."
            )
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"Cannot read {resolved}: {_first_line(exc)}") from exc
    scorer.check_schema(source.schema, resolved.name)
    return source


class ParquetInput(InputFile):
    """A Parquet file: only the needed columns are read, row groups before a resume skipped."""

    def __init__(self, path: Path, columns: list[str], chunk_rows: int) -> None:
        super().__init__(path, columns, chunk_rows)
        # pyarrow's default (pre_buffer=True) keeps every column chunk it has read in
        # memory until the reader is done: the whole file, for a file of one row group.
        self.file = pq.ParquetFile(path, pre_buffer=False, buffer_size=PARQUET_BUFFER)
        self.schema = self.file.schema_arrow
        self.rows_total = self.file.metadata.num_rows

    def chunks(self, first: int = 0) -> Iterator[tuple[int, pa.Table]]:
        start = first * self.chunk_rows
        group, skip = 0, start
        meta = self.file.metadata
        while group < meta.num_row_groups and meta.row_group(group).num_rows <= skip:
            skip -= meta.row_group(group).num_rows
            group += 1
        batches = self.file.iter_batches(
            batch_size=self.chunk_rows,
            row_groups=range(group, meta.num_row_groups),
            columns=self.columns,
        )
        yield from self._numbered(rechunk(batches, self.chunk_rows, skip), first)

    def fraction(self, rows_done: int) -> float:
        return rows_done / self.rows_total if self.rows_total else 1.0


class CsvInput(InputFile):
    """A CSV file (maybe compressed): model fields are read as text and parsed per chunk,
    so one bad value rejects a row instead of stopping the read."""

    rows_total = None

    def __init__(self, path: Path, scorer: ChunkScorer, chunk_rows: int) -> None:
        super().__init__(path, scorer.columns, chunk_rows)
        self.codec = CSV_SUFFIXES[path.suffix.lower()]
        self.size = path.stat().st_size
        self._raw: pa.NativeFile | None = None
        self.convert = pacsv.ConvertOptions(
            column_types=dict.fromkeys(scorer.inputs, pa.string()), strings_can_be_null=True
        )
        with self._open() as header:  # reads the first block only
            self.schema = header.schema
        self._raw = None
        if all(c in self.schema.names for c in self.columns):
            self.convert.include_columns = self.columns

    def chunks(self, first: int = 0) -> Iterator[tuple[int, pa.Table]]:
        with self._open() as reader:
            batches = _csv_batches(reader, self.path)
            yield from self._numbered(
                rechunk(batches, self.chunk_rows, first * self.chunk_rows), first
            )

    def fraction(self, rows_done: int) -> float:
        if self._raw is None:
            return 0.0
        if self._raw.closed or not self.size:
            return 1.0
        return min(1.0, float(self._raw.tell()) / self.size)

    @contextmanager
    def _open(self) -> Iterator[pacsv.CSVStreamingReader]:
        raw = self._raw = pa.OSFile(str(self.path))
        try:
            stream = raw if self.codec is None else pa.CompressedInputStream(raw, self.codec)
            read = pacsv.ReadOptions(block_size=4 << 20)
            yield pacsv.open_csv(stream, read_options=read, convert_options=self.convert)
        finally:
            raw.close()


def _csv_batches(reader: pacsv.CSVStreamingReader, path: Path) -> Iterator[pa.RecordBatch]:
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            return
        except pa.ArrowInvalid as exc:  # without the row's text: the data may be sensitive
            problem = re.sub(r"(got \d+ ?\w*): .*", r"\1", _first_line(exc))
            problem = re.sub(r"'[^']*'", "'…'", problem)
            raise DataError(
                f"Cannot read {path.name}: {problem}. Fix the file "
                "(every row needs the header's columns, a column one type), or make it Parquet."
            ) from exc
        yield batch


def rechunk(batches: Iterable[pa.RecordBatch], size: int, skip: int = 0) -> Iterator[pa.Table]:
    """Tables of exactly ``size`` rows (the last fewer) from batches of any size,
    after dropping the first ``skip`` rows."""
    pending: list[pa.RecordBatch] = []
    held = 0
    for whole in batches:
        batch = whole
        if skip:
            if batch.num_rows <= skip:
                skip -= batch.num_rows
                continue
            batch, skip = batch.slice(skip), 0
        while batch.num_rows:
            take = min(size - held, batch.num_rows)
            pending.append(batch.slice(0, take))
            held += take
            batch = batch.slice(take)
            if held == size:
                yield pa.Table.from_batches(pending)
                pending, held = [], 0
    if held:
        yield pa.Table.from_batches(pending)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


# --------------------------------------------------------------------------- resuming

STATE_FORMAT = "modelyard.batch-state/1"
PART = re.compile(r"part-(\d+)\.parquet")
ROWS_IN, ROWS_REJECTED = b"modelyard.rows_in", b"modelyard.rows_rejected"


class PartsDir:
    """``<output>.parts/``: the finished chunks of an unfinished run, and the run's key."""

    def __init__(self, output: Path) -> None:
        self.root = output.with_name(f"{output.name}.parts")
        self.state_path = self.root / "state.json"

    def part(self, n: int) -> Path:
        return self.root / f"part-{n:06d}.parquet"

    def rejects_part(self, n: int) -> Path:
        return self.root / f"rejects-{n:06d}.parquet"

    def state(self) -> dict[str, Any] | None:
        try:
            state = json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            return None
        return state if isinstance(state, dict) and state.get("format") == STATE_FORMAT else None

    def prepare(self, key: dict[str, Any], *, resume: bool) -> bool:
        """Keep the parts of a run with this key (when resuming), else start afresh.

        Returns whether parts of a run with another key were discarded."""
        state = self.state()
        if resume and state is not None and state.get("key") == key:
            return False
        if self.root.exists():
            self._clear()
        self.root.mkdir(parents=True)
        self._save({"format": STATE_FORMAT, "key": key, "chunks": None})
        return resume and state is not None

    def finished(self) -> set[int]:
        """The chunks whose scores (and so rejects) are written."""
        found = (PART.fullmatch(p.name) for p in self.root.iterdir())
        return {int(m.group(1)) for m in found if m}

    def counts(self, n: int) -> tuple[int, int, int]:
        """(rows in, rows scored, rows rejected) of finished chunk ``n``."""
        meta = pq.read_metadata(self.part(n))
        extra = meta.metadata or {}
        return int(extra[ROWS_IN]), meta.num_rows, int(extra[ROWS_REJECTED])

    def total_chunks(self) -> int | None:
        """How many chunks the input has, once a run has read it to the end."""
        state = self.state()
        return None if state is None else state.get("chunks")

    def write(self, n: int, result: ChunkResult, *, rows_in: int) -> None:
        """Write chunk ``n``: its rejects, then its scores, each whole or not at all."""
        _write_atomic(result.rejects, self.rejects_part(n))
        meta = {ROWS_IN: str(rows_in).encode(), ROWS_REJECTED: str(result.rows_rejected).encode()}
        _write_atomic(result.scores.replace_schema_metadata(meta), self.part(n))

    def mark_complete(self, chunks: int) -> None:
        state = self.state() or {}
        self._save({**state, "chunks": chunks})

    def merge(self, chunks: int, output: Path, rejects: Path) -> None:
        """Stream the parts into the two files, one row group per chunk; drop the parts."""
        _concatenate([self.part(n) for n in range(chunks)], output)
        _concatenate([self.rejects_part(n) for n in range(chunks)], rejects)
        shutil.rmtree(self.root)

    def _save(self, state: dict[str, Any]) -> None:
        tmp = self.state_path.with_name("state.json.tmp")
        tmp.write_text(json.dumps(state, indent=1))
        tmp.replace(self.state_path)

    def _clear(self) -> None:
        ours = re.compile(r"(state\.json|(part|rejects)-\d+\.parquet)(\.tmp)?")
        strangers = [p.name for p in self.root.iterdir() if not ours.fullmatch(p.name)]
        if strangers or not self.root.is_dir():
            raise InvalidInputError(
                f"{self.root} holds files that batch scoring did not write ({strangers[:3]}); "
                "move them, or choose another output path."
            )
        shutil.rmtree(self.root)


def model_identity(bundle: ModelBundle) -> str:
    """The digest of the bundle's manifest (as stored); an unsaved bundle gets a new
    identity each time, so its runs never resume."""
    if bundle.manifest is None:
        return f"unsaved-{uuid.uuid4().hex}"
    return hashlib.sha256(json.dumps(bundle.manifest, sort_keys=True).encode()).hexdigest()


def _write_atomic(table: pa.Table, path: Path) -> None:
    tmp = path.with_name(f"{path.name}.tmp")
    # Parts live minutes: written plain, at ~5x the speed of pyarrow's defaults.
    pq.write_table(table, tmp, compression="none", use_dictionary=False)
    tmp.replace(path)


def _concatenate(parts: list[Path], destination: Path) -> None:
    tmp = destination.with_name(f"{destination.name}.tmp")
    writer: pq.ParquetWriter | None = None
    try:
        for path in parts:
            table = pq.read_table(path).replace_schema_metadata(None)
            if writer is None:  # dictionaries only where values repeat (not scores)
                repeating = [
                    f.name
                    for f in table.schema
                    if f.name != "row" and not pa.types.is_floating(f.type)
                ]
                writer = pq.ParquetWriter(tmp, table.schema, use_dictionary=repeating)
            elif table.schema != writer.schema:
                table = _conform(table, writer.schema, path)
            if table.num_rows:
                writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()
    tmp.replace(destination)


def _conform(table: pa.Table, schema: pa.Schema, path: Path) -> pa.Table:
    try:
        return table.cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise ArtifactError(
            f"Part {path.name} has columns {table.schema} where earlier parts have {schema}; "
            "rerun with --no-resume."
        ) from exc
