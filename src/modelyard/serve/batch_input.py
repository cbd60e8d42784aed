"""The input of a batch run: a Parquet or CSV file, read in chunks of ``chunk_rows`` rows.

    source = open_input("in.csv.gz", scorer, chunk_rows)   # checked against the model
    for n, chunk in source.chunks(first=3): ...             # chunk 3 on, for a resume

Parquet is read column-selectively, row groups before a resume skipped; CSV (plain, gzip,
bz2 or zstd) is streamed with the model's fields read as text, so that a bad value rejects
its row instead of stopping the read.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from modelyard.errors import DataError, InvalidInputError

if TYPE_CHECKING:
    from modelyard.serve.batch_scorer import ChunkScorer

PARQUET_BUFFER = 1 << 20
CSV_SUFFIXES = {".csv": None, ".gz": "gzip", ".bz2": "bz2", ".zst": "zstd"}


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
