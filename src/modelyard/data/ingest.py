"""Reading a data source into a temporary Parquet file, chunk by chunk, with bounded memory.

    with stage("loans.csv", folder=tmp, progress=print) as staged:
        staged.path     # a temporary Parquet file, removed when the block ends
        staged.digest   # sha256 of the source bytes (a file) or of its canonical Arrow form
        staged.schema   # inferred batch by batch (see modelyard.data.schema)

Sources: CSV (``.csv``, ``.tsv``, ``.txt``, each optionally ``.gz``), streamed
with ``pyarrow.csv.open_csv`` in blocks of ``block_size`` bytes; Parquet
(``.parquet``, ``.pq``), streamed with ``ParquetFile.iter_batches``; and a
pandas DataFrame or pyarrow Table, sliced. Batches go to a
``ParquetWriter`` in row groups of ``ROW_GROUP_ROWS``, so memory holds a few
blocks, never the file. A CSV file is hashed as it is read, from the same
bytes the parser sees; ``progress(done_bytes, total_bytes)`` is called as
they pass.

CSV column types are inferred from the first block. When a later block holds
a value that does not fit (``2.5`` in an integer column, text in a number
column), the file is read again from the start with that column widened
(integer → float → string; a column empty so far → integer, float or string
by that value), so a column's type never depends on where a block ends.

Every problem is a ``DataError`` naming the file and, where it can be found,
the line: malformed rows, unclosed quotes, a wrong delimiter, bytes that are
not UTF-8, an empty file, a Parquet file that is not Parquet.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import hashlib
import io
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeAlias, cast

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from modelyard.data.schema import Schema, SchemaBuilder
from modelyard.errors import DataError

DEFAULT_BLOCK_SIZE = 1 << 20
"""CSV bytes per block. The reader works on several blocks at once, so its memory
grows with this: about 170 MB at 1 MiB, 280 MB at 4 MiB (bench/ingest_memory.py)."""
ROW_GROUP_ROWS = 65_536
CHUNK = 1 << 20
CSV_SUFFIXES = {".csv": ",", ".tsv": "\t", ".txt": ","}
PARQUET_SUFFIXES = (".parquet", ".pq")
DELIMITERS = (",", ";", "\t", "|")
MAX_REREADS = 50
STALE_SECONDS = 24 * 3600
_PREFIX = "ingest-"

Progress = Callable[[int, int], None]
Source: TypeAlias = "str | Path | pd.DataFrame | pa.Table"

_CONVERSION = re.compile(
    r"In CSV column #(\d+): (?:Row #\d+: )?CSV conversion error to (\S+?): invalid value '(.*)'",
    re.DOTALL,
)
_FIELD_COUNT = re.compile(r"Expected (\d+) columns, got (\d+)")


@dataclass(frozen=True)
class CsvOptions:
    """How a CSV file is read: the delimiter (default: by extension), encoding, block size."""

    delimiter: str | None = None
    encoding: str = "utf-8"
    block_size: int = DEFAULT_BLOCK_SIZE


@dataclass(frozen=True)
class Staged:
    """A source converted to a temporary Parquet file, with what was learned on the way."""

    path: Path
    digest: str
    source: dict[str, Any]
    schema: Schema
    n_rows: int


@contextmanager
def stage(
    data: Source,
    *,
    folder: Path | None = None,
    options: CsvOptions | None = None,
    progress: Progress | None = None,
) -> Iterator[Staged]:
    """Convert ``data`` to a Parquet file in ``folder`` that lives until the block ends."""
    options = options or CsvOptions()
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        sweep(folder)
    with tempfile.TemporaryDirectory(dir=folder, prefix=_PREFIX) as scratch:
        target = Path(scratch) / "data.parquet"
        if isinstance(data, pd.DataFrame | pa.Table | pa.RecordBatch):
            yield _stage_arrow(data, target, progress)
        else:
            yield _stage_file(Path(data), target, options, progress)


def sweep(folder: Path, older_than_seconds: float = STALE_SECONDS) -> int:
    """Remove scratch folders left by killed registrations; returns how many went.

    A folder goes only when neither it nor its file changed for
    ``older_than_seconds``, so a registration still writing keeps its own.
    """
    cutoff = time.time() - older_than_seconds
    removed = 0
    for scratch in folder.glob(f"{_PREFIX}*"):
        try:
            newest = max(p.stat().st_mtime for p in [scratch, *scratch.iterdir()])
        except OSError:
            continue  # removed meanwhile
        if newest < cutoff:
            shutil.rmtree(scratch, ignore_errors=True)
            removed += 1
    return removed


def _stage_file(path: Path, target: Path, options: CsvOptions, progress: Progress | None) -> Staged:
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise DataError(f"{path} {what}. Give the path of a CSV or Parquet file.")
    compressed = path.suffix.lower() == ".gz"
    suffix = _inner_suffix(path)
    if suffix in PARQUET_SUFFIXES and not compressed:
        return _stage_parquet(path, target, progress)
    if suffix in CSV_SUFFIXES:
        return _CsvStager(path, target, options, compressed, progress).run()
    raise DataError(
        f"Cannot read {path}: '{''.join(path.suffixes) or 'no extension'}' is not a supported "
        f"format. Use CSV ({', '.join(CSV_SUFFIXES)}, optionally .gz) or Parquet "
        f"({', '.join(PARQUET_SUFFIXES)}); export spreadsheets as CSV first."
    )


# ---------------------------------------------------------------------- the Parquet sink


class _ParquetSink:
    """Writes batches to a Parquet file in row groups and infers the schema on the way.

    Use it in a ``with`` block: the file is completed when the block succeeds
    and merely closed when it fails (the caller discards it).
    """

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self.writer = pq.ParquetWriter(path, schema, compression="zstd")
        self.builder = SchemaBuilder()
        self.rows = 0
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0

    def write(self, batch: pa.RecordBatch) -> None:
        self.builder.update(batch)
        self.rows += batch.num_rows
        self._pending.append(batch)
        self._pending_rows += batch.num_rows
        if self._pending_rows >= ROW_GROUP_ROWS:
            self._flush()

    def __enter__(self) -> _ParquetSink:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        try:
            if kind is None:
                self._flush()
        finally:
            self.writer.close()

    def _flush(self) -> None:
        if self._pending:
            self.writer.write_table(pa.Table.from_batches(self._pending))
            self._pending, self._pending_rows = [], 0


def _finish(sink: _ParquetSink, target: Path, digest: str, source: dict[str, Any]) -> Staged:
    if sink.rows == 0:
        raise DataError(
            f"{source.get('file', 'The data')} has columns but no rows; there is nothing to "
            "register. Check that the file is complete."
        )
    return Staged(target, digest, source, sink.builder.finish(), sink.rows)


def _check_names(names: list[str], where: str) -> None:
    seen: dict[str, int] = {}
    for i, name in enumerate(names, start=1):
        if not name.strip():
            raise DataError(
                f"{where}: column {i} has an empty name. Name every column (a pandas index "
                "written by to_csv has none: write the file with index=False)."
            )
        if name in seen:
            raise DataError(
                f"{where}: the column name '{name}' appears twice (columns {seen[name]} and {i}). "
                "Rename one of them."
            )
        seen[name] = i


# ---------------------------------------------------------------------- in-memory data


def _stage_arrow(
    data: pd.DataFrame | pa.Table | pa.RecordBatch, target: Path, progress: Progress | None
) -> Staged:
    table = _to_arrow(data)
    kind = "dataframe" if isinstance(data, pd.DataFrame) else "arrow"
    if table.num_columns == 0:
        raise DataError(f"The {kind} has no columns; there is nothing to register.")
    _check_names(table.column_names, f"The {kind}")
    plain = table.schema.remove_metadata()
    digest, total = hashlib.sha256(), max(table.nbytes, 1)
    with _ParquetSink(target, table.schema) as sink:
        for start in range(0, table.num_rows, ROW_GROUP_ROWS):
            piece = table.slice(start, ROW_GROUP_ROWS).combine_chunks()
            for batch in piece.to_batches():
                digest.update(_ipc_bytes(batch, plain))
                sink.write(batch)
            if progress:
                done = min(start + ROW_GROUP_ROWS, table.num_rows)
                progress(total * done // table.num_rows, total)
    return _finish(sink, target, digest.hexdigest(), {"format": kind})


def _to_arrow(data: pd.DataFrame | pa.Table | pa.RecordBatch) -> pa.Table:
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if isinstance(data, pa.Table):
        return data
    frame = data
    if any(name is not None for name in frame.index.names):
        frame = frame.reset_index()  # a named index (set_index) is data: keep it as columns
    names = [str(c) for c in frame.columns]
    _check_names(names, "The DataFrame")
    try:
        return pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowException, ValueError, TypeError) as exc:
        raise DataError(
            f"Cannot convert the DataFrame to Arrow: {exc}. Give each column one type, e.g. "
            "df['col'] = df['col'].astype(str) for a column that mixes text and numbers."
        ) from exc


def _ipc_bytes(batch: pa.RecordBatch, schema: pa.Schema) -> bytes:
    """The Arrow IPC stream of one batch: a canonical serialisation of its values."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, schema) as writer:
        writer.write_batch(batch.replace_schema_metadata(None))
    return bytes(sink.getvalue())


# ---------------------------------------------------------------------- Parquet files


def _stage_parquet(path: Path, target: Path, progress: Progress | None) -> Staged:
    try:
        file = pq.ParquetFile(path, pre_buffer=False)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(
            f"{path} is not a readable Parquet file ({_first_line(exc)}). If it holds CSV, "
            "rename it to .csv; otherwise export it again from its source."
        ) from exc
    with file:
        _check_names(file.schema_arrow.names, str(path))
        size, rows = path.stat().st_size, max(file.metadata.num_rows, 1)
        digest = _sha256_file(path)
        with _ParquetSink(target, file.schema_arrow) as sink:
            try:
                for batch in file.iter_batches(batch_size=ROW_GROUP_ROWS):
                    sink.write(batch)
                    if progress:
                        progress(size * sink.rows // rows, size)
            except (pa.ArrowException, OSError) as exc:
                raise DataError(
                    f"{path} is damaged: reading row {sink.rows:,} failed "
                    f"({_first_line(exc)}). Export the file again from its source."
                ) from exc
    source = {"format": "parquet", "file": str(path), "bytes": size, "sha256": digest}
    return _finish(sink, target, digest, source)


def read_batches(
    path: Path, batch_rows: int = ROW_GROUP_ROWS, columns: Sequence[str] | None = None
) -> Iterator[pa.RecordBatch]:
    """A Parquet file's rows in batches, holding about one row group in memory.

    ``pre_buffer`` is off on purpose: with it, pyarrow keeps the buffered
    column chunks of the row groups already read, and memory grows with the file.
    """
    with pq.ParquetFile(path, pre_buffer=False) as file:
        yield from file.iter_batches(batch_size=batch_rows, columns=columns)


# ---------------------------------------------------------------------- CSV files


class _Widen(Exception):
    """Internal: a later block needs a wider type for one column; read again."""

    def __init__(self, column: str, arrow_type: pa.DataType) -> None:
        super().__init__(column)
        self.column = column
        self.arrow_type = arrow_type


class _CsvStager:
    """Reads one CSV file into the sink, widening column types and re-reading as needed."""

    def __init__(
        self,
        path: Path,
        target: Path,
        options: CsvOptions,
        compressed: bool,
        progress: Progress | None,
    ) -> None:
        self.path, self.target, self.compressed, self.progress = path, target, compressed, progress
        self.delimiter = options.delimiter or CSV_SUFFIXES.get(_inner_suffix(path), ",")
        self.encoding = _codec(options.encoding, path)
        self.block_size = options.block_size
        if len(self.delimiter) != 1:
            raise DataError(
                f"The delimiter must be one character; got {self.delimiter!r}. "
                "For a tab, pass --delimiter $'\\t' (or '\\t' in Python)."
            )

    def run(self) -> Staged:
        overrides: dict[str, pa.DataType] = {}
        for _ in range(MAX_REREADS):
            try:
                digest, sink = self._read(overrides)
                break
            except _Widen as widen:
                if overrides.get(widen.column) == widen.arrow_type:
                    widen.arrow_type = pa.string()
                overrides[widen.column] = widen.arrow_type
        else:
            raise DataError(
                f"{self.path}: column types kept changing after {MAX_REREADS} reads "
                f"({', '.join(overrides)}). Report this as a bug, with the file if you can."
            )
        source = {
            "format": "csv",
            "file": str(self.path),
            "bytes": self.path.stat().st_size,
            "sha256": digest,
            "delimiter": self.delimiter,
            "encoding": self.encoding,
            "compression": "gzip" if self.compressed else None,
        }
        return _finish(sink, self.target, digest, source)

    def _read(self, overrides: dict[str, pa.DataType]) -> tuple[str, _ParquetSink]:
        with self.path.open("rb") as raw:
            hashing = _HashingReader(raw, self.path.stat().st_size, self.progress)
            stream = gzip.GzipFile(fileobj=hashing) if self.compressed else hashing
            reader = self._open(stream, overrides)
            self._check_header(reader.schema)
            with _ParquetSink(self.target, reader.schema) as sink:
                for batch in self._batches(reader):
                    sink.write(batch)
            hashing.drain()
        return hashing.hexdigest(), sink

    def _open(self, stream: io.IOBase, overrides: dict[str, pa.DataType]) -> Any:
        read = pacsv.ReadOptions(block_size=self.block_size, encoding=self.encoding)
        parse = pacsv.ParseOptions(delimiter=self.delimiter, newlines_in_values=True)
        convert = pacsv.ConvertOptions(column_types=overrides, strings_can_be_null=True)
        try:
            return pacsv.open_csv(stream, read, parse, convert)
        except (pa.ArrowException, OSError, EOFError, UnicodeError) as exc:
            raise self._error(exc, None) from exc

    def _batches(self, reader: Any) -> Iterator[pa.RecordBatch]:
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                return
            except (pa.ArrowException, OSError, EOFError, UnicodeError) as exc:
                raise self._error(exc, reader.schema) from exc
            yield batch

    def _check_header(self, schema: pa.Schema) -> None:
        names = schema.names
        if len(names) == 1 and (wrong := self._wrong_delimiter(names[0])):
            raise wrong
        _check_names(names, str(self.path))
        if any(pa.types.is_binary(t) or pa.types.is_large_binary(t) for t in schema.types):
            raise self._not_utf8()

    def _wrong_delimiter(self, header: str) -> DataError | None:
        """The error to give when the header looks separated by another delimiter."""
        others = [d for d in DELIMITERS if d != self.delimiter and d in header]
        if not others:
            return None
        return DataError(
            f"{self.path} was read as one column named {header[:60]!r}, which contains "
            f"{others[0]!r}: the file is probably {others[0]!r}-separated, not "
            f"{self.delimiter!r}-separated. Pass --delimiter {others[0]!r} "
            f"(delimiter={others[0]!r} in Python)."
        )

    def _error(self, exc: BaseException, schema: pa.Schema | None) -> Exception:
        text = str(exc)
        if "Empty CSV file" in text:
            return DataError(f"{self.path} is empty: it has no header and no rows.")
        if "invalid UTF8" in text or isinstance(exc, UnicodeError):
            return self._not_utf8()
        if (match := _CONVERSION.search(text)) and schema is not None:
            column = schema.names[int(match.group(1))]
            return _Widen(column, _wider(match.group(2), match.group(3)))
        if match := _FIELD_COUNT.search(text):
            return self._bad_row(int(match.group(1)))
        if isinstance(exc, OSError | EOFError):
            truncated = " It may be truncated: compress it again." if self.compressed else ""
            return DataError(f"Cannot read {self.path}: {_first_line(exc)}.{truncated}")
        return DataError(f"Cannot parse {self.path} as CSV: {_first_line(exc)}.")

    def _bad_row(self, expected: int) -> DataError:
        with self._text() as stream:
            header = stream.readline(CHUNK).rstrip("\r\n")
        if expected == 1 and (wrong := self._wrong_delimiter(header)):
            return wrong
        with self._text() as stream:
            found = _find_bad_row(stream, self.delimiter, expected)
        hint = f" If the file is not {self.delimiter!r}-separated, pass --delimiter."
        if found is None:
            return DataError(
                f"{self.path}: a row has a different number of fields than the header "
                f"({expected}). The file may be truncated or a row malformed.{hint}"
            )
        line, problem = found
        return DataError(
            f"{self.path}, line {line}: {problem}. The file may be truncated or that row is "
            f"malformed: fix or remove the line, then register the file again.{hint}"
        )

    def _not_utf8(self) -> DataError:
        if self.encoding != "utf-8":
            return DataError(
                f"{self.path} cannot be decoded as {self.encoding}. Check the file's encoding "
                "(`file -i` tells it on most systems) and pass it with --encoding."
            )
        with self._binary() as stream:
            where = _first_invalid_utf8(stream)
        place = f" at byte {where[0]:,} (line {where[1]:,})" if where else ""
        return DataError(
            f"{self.path} is not valid UTF-8 text{place}. Re-encode it as UTF-8 (e.g. iconv -f "
            "latin1 -t utf-8), or pass its encoding with --encoding latin-1 (encoding= in Python)."
        )

    @contextmanager
    def _binary(self) -> Iterator[io.BufferedIOBase]:
        with self.path.open("rb") as raw:
            yield gzip.GzipFile(fileobj=raw) if self.compressed else raw

    @contextmanager
    def _text(self) -> Iterator[IO[str]]:
        with self._binary() as stream:
            yield io.TextIOWrapper(
                cast(IO[bytes], stream), encoding=self.encoding, errors="replace", newline=""
            )


class _HashingReader(io.RawIOBase):
    """A binary stream that hashes and counts what passes through and reports progress."""

    def __init__(self, raw: io.BufferedIOBase, total: int, progress: Progress | None) -> None:
        super().__init__()
        self._raw, self._total, self._progress = raw, total, progress
        self._digest = hashlib.sha256()
        self.done = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self._raw.readinto(buffer)
        if n:
            self._digest.update(memoryview(buffer)[:n])
            self.done += n
            if self._progress:
                self._progress(self.done, self._total)
        return n or 0

    def drain(self) -> None:
        """Read whatever the parser left unread, so the digest covers the whole file."""
        while self.read(CHUNK):
            pass

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


def _wider(current: str, value: str) -> pa.DataType:
    """The type a column needs once ``value`` appeared in it (it was ``current``)."""
    if current == "null" and _parses(int, value):
        return pa.int64()
    if current in ("null", "int64") and not _parses(int, value) and _parses(float, value):
        return pa.float64()
    return pa.string()


def _parses(kind: type, value: str) -> bool:
    if "_" in value:
        return False  # Python reads 1_000 as a number; the CSV parser does not
    try:
        kind(value)
    except ValueError:
        return False
    return True


def _find_bad_row(stream: IO[str], delimiter: str, expected: int) -> tuple[int, str] | None:
    """The first line whose field count differs from the header's, and what is wrong there."""
    reader = csv.reader(stream, delimiter=delimiter, strict=True)
    line = 1  # where the next row starts
    try:
        for number, row in enumerate(reader):
            if number > 0 and row and len(row) != expected:
                return line, f"{len(row)} field(s) where the header has {expected}"
            line = reader.line_num + 1
    except csv.Error as exc:
        return line, f"a quoted field that opens here is never closed ({exc})"
    return None


def _first_invalid_utf8(stream: io.BufferedIOBase) -> tuple[int, int] | None:
    """(byte offset, line) of the first byte that is not UTF-8, reading in chunks."""
    offset, line, carry = 0, 1, b""
    while block := stream.read(CHUNK):
        data = carry + block
        try:
            data.decode("utf-8")
            valid, carry = len(data), b""
        except UnicodeDecodeError as exc:
            if exc.reason != "unexpected end of data" or exc.start < len(data) - 3:
                return offset + exc.start, line + data.count(b"\n", 0, exc.start)
            valid, carry = exc.start, data[exc.start :]  # a character split across chunks
        offset += valid
        line += data.count(b"\n", 0, valid)
    return (offset, line) if carry else None


def _codec(encoding: str, path: Path) -> str:
    try:
        return codecs.lookup(encoding).name
    except LookupError as exc:
        raise DataError(
            f"Cannot read {path}: '{encoding}' is not a text encoding Python knows. Use e.g. "
            "utf-8, latin-1 or cp1252."
        ) from exc


def _inner_suffix(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes[-1:] == [".gz"]:
        suffixes = suffixes[:-1]
    return suffixes[-1] if suffixes else ""


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
