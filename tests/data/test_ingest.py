"""Reading sources chunk by chunk into Parquet, and the errors malformed files get."""

from __future__ import annotations

import gzip
import hashlib
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from modelyard.data.ingest import ROW_GROUP_ROWS, CsvOptions, stage, sweep
from modelyard.errors import DataError

TINY = CsvOptions(block_size=256)  # a few rows per block, so files span many blocks


def _frame(rows: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "id": np.arange(rows),
            "amount": rng.normal(100, 20, rows).round(3),
            "count": rng.integers(0, 50, rows),
            "city": rng.choice(["paris", "rome", "oslo"], rows),
            "flag": rng.choice([True, False], rows),
            "note": [f"free text {i}" for i in range(rows)],
        }
    )
    frame.loc[rng.choice(rows, rows // 10, replace=False), "amount"] = np.nan
    frame.loc[rng.choice(rows, rows // 20, replace=False), "city"] = None
    return frame


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _message(path: Path, options: CsvOptions = TINY) -> str:
    with pytest.raises(DataError) as caught, stage(path, options=options):
        pass
    assert str(path) in caught.value.message, "the error must name the file"
    return caught.value.message


def test_chunked_csv_equals_a_one_shot_pandas_read(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    _frame().to_csv(path, index=False)
    calls: list[tuple[int, int]] = []
    with stage(path, options=TINY, progress=lambda d, t: calls.append((d, t))) as staged:
        stored = pq.read_table(staged.path).to_pandas()
        assert staged.n_rows == 400
    expected = pd.read_csv(path)
    pd.testing.assert_frame_equal(stored, expected, check_dtype=False)
    assert stored["count"].dtype == np.int64 and stored["flag"].dtype == bool
    assert len(calls) > 20, "a tiny block size must read the file in many chunks"
    done = [d for d, _ in calls]
    assert done == sorted(done) and calls[-1] == (path.stat().st_size, path.stat().st_size)


def test_digest_is_the_sha256_of_the_source_bytes(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    _frame().to_csv(path, index=False)
    with stage(path, options=TINY) as staged:
        assert staged.digest == hashlib.sha256(path.read_bytes()).hexdigest()
        assert staged.source["delimiter"] == "," and staged.source["encoding"] == "utf-8"


def test_a_type_surprise_in_a_later_block_widens_the_column(tmp_path: Path) -> None:
    body = "".join(f"{i},{i % 7}\n" for i in range(200))
    path = _write(tmp_path, "late.csv", f"a,b\n{body}2.5,x\n{body}".encode())
    with stage(path, options=TINY) as staged:
        table = pq.read_table(staged.path)
    assert table.schema.field("a").type == pa.float64()
    assert table.schema.field("b").type == pa.string()
    assert table.num_rows == 401
    assert table.column("a").to_pylist()[200] == 2.5
    assert staged.schema.column("a").type == "float"


def test_a_column_empty_in_the_first_block_takes_its_later_type(tmp_path: Path) -> None:
    path = _write(tmp_path, "sparse.csv", b"a,b\n" + b",x\n" * 200 + b"7,y\n")
    with stage(path, options=TINY) as staged:
        column = staged.schema.column("a")
        assert (column.type, column.nullable, column.min, column.max) == ("integer", True, 7, 7)


def test_parquet_is_streamed_and_hashed_as_a_file(tmp_path: Path) -> None:
    path = tmp_path / "data.parquet"
    frame = _frame(rows=ROW_GROUP_ROWS + 10)
    frame.to_parquet(path, index=False, row_group_size=1000)
    with stage(path) as staged:
        assert staged.digest == hashlib.sha256(path.read_bytes()).hexdigest()
        back = pq.read_table(staged.path).to_pandas()
    pd.testing.assert_frame_equal(back, frame)


def test_gzip_csv_and_tsv_are_read(tmp_path: Path) -> None:
    frame = _frame(rows=50)
    gz = tmp_path / "data.csv.gz"
    gz.write_bytes(gzip.compress(frame.to_csv(index=False).encode()))
    tsv = tmp_path / "data.tsv"
    frame.to_csv(tsv, index=False, sep="\t")
    for path in (gz, tsv):
        with stage(path, options=TINY) as staged:
            assert pq.read_table(staged.path).num_rows == 50
            assert staged.schema.names == list(frame.columns)


def test_a_frame_and_its_arrow_table_hash_the_same_and_ignore_metadata() -> None:
    frame = _frame()
    with stage(frame) as a, stage(pa.Table.from_pandas(frame, preserve_index=False)) as b:
        assert a.digest == b.digest
    changed = frame.copy()
    changed.loc[3, "count"] += 1
    with stage(changed) as c:
        assert c.digest != a.digest


def test_a_named_index_is_kept_as_a_column_and_an_unnamed_one_dropped() -> None:
    frame = _frame(rows=10)
    with stage(frame.set_index("id")) as staged:
        assert staged.schema.names == list(frame.columns)
    with stage(frame.iloc[::2]) as staged:
        assert staged.schema.names == list(frame.columns) and staged.n_rows == 5


def test_the_temporary_file_is_removed_afterwards(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    _frame(rows=20).to_csv(path, index=False)
    scratch = tmp_path / "scratch"
    with stage(path, folder=scratch) as staged:
        assert staged.path.exists()
    assert list(scratch.iterdir()) == []


def test_scratch_left_by_a_killed_registration_is_swept_when_stale(tmp_path: Path) -> None:
    stale, fresh = tmp_path / "ingest-old", tmp_path / "ingest-new"
    for folder in (stale, fresh):
        folder.mkdir()
        (folder / "data.parquet").write_bytes(b"partial")
    two_days_ago = time.time() - 2 * 24 * 3600
    for path in (stale, stale / "data.parquet"):
        os.utime(path, (two_days_ago, two_days_ago))
    assert sweep(tmp_path) == 1
    assert not stale.exists() and fresh.exists()


# ---------------------------------------------------------------------- malformed input


def test_a_truncated_row_is_reported_with_its_line(tmp_path: Path) -> None:
    rows = "".join(f"{i},{i},{i}\n" for i in range(100))
    path = _write(tmp_path, "cut.csv", f"a,b,c\n{rows}100,10".encode())
    message = _message(path)
    assert "line 102" in message and "2 field(s) where the header has 3" in message
    assert "truncated" in message


def test_an_unterminated_quote_is_reported_where_it_opens(tmp_path: Path) -> None:
    path = _write(tmp_path, "quote.csv", b'a,b,c\n1,2,3\n4,"5,6\n7,8,9\n')
    message = _message(path)
    assert "line 3" in message and "never closed" in message


def test_a_wrong_delimiter_is_detected_and_the_right_one_suggested(tmp_path: Path) -> None:
    path = _write(tmp_path, "semi.csv", b"a;b;c\n1;2;3\n4;5;6\n")
    message = _message(path)
    assert "';'-separated" in message and "--delimiter ';'" in message
    with stage(path, options=CsvOptions(delimiter=";")) as staged:
        assert staged.schema.names == ["a", "b", "c"]


def test_a_wrong_delimiter_with_decimal_commas_is_detected(tmp_path: Path) -> None:
    path = _write(tmp_path, "euro.csv", b"price;qty\n1,5;2\n2,5;3\n")
    assert "--delimiter ';'" in _message(path)


@pytest.mark.parametrize("late", [False, True], ids=["first-block", "later-block"])
def test_non_utf8_bytes_are_located(tmp_path: Path, late: bool) -> None:
    head = b"a,b\n" + (b"1,plain\n" * 100 if late else b"")
    path = _write(tmp_path, "latin.csv", head + "2,café\n".encode("latin-1"))
    message = _message(path)
    offset, line = len(head) + 5, 102 if late else 2  # where the é is
    assert f"byte {offset:,} (line {line})" in message
    assert "--encoding latin-1" in message
    with stage(path, options=CsvOptions(encoding="latin-1")) as staged:
        assert pq.read_table(staged.path).column("b").to_pylist()[-1] == "café"


def test_an_empty_file_and_a_header_without_rows_are_refused(tmp_path: Path) -> None:
    assert "is empty" in _message(_write(tmp_path, "empty.csv", b""))
    assert "no rows" in _message(_write(tmp_path, "header.csv", b"a,b\n"))


def test_a_parquet_file_that_is_not_parquet_is_refused(tmp_path: Path) -> None:
    message = _message(_write(tmp_path, "fake.parquet", b"a,b\n1,2\n"))
    assert "not a readable Parquet file" in message and "rename it to .csv" in message
    real = tmp_path / "real.parquet"
    _frame().to_parquet(real)
    cut = _write(tmp_path, "cut.parquet", real.read_bytes()[:-100])
    assert "not a readable Parquet file" in _message(cut)


def test_a_truncated_gzip_file_is_reported(tmp_path: Path) -> None:
    packed = gzip.compress(_frame().to_csv(index=False).encode())
    message = _message(_write(tmp_path, "cut.csv.gz", packed[: len(packed) // 2]))
    assert "may be truncated" in message


def test_missing_files_and_unsupported_formats_are_refused(tmp_path: Path) -> None:
    assert "does not exist" in _message(tmp_path / "nope.csv")
    assert "'.xlsx' is not a supported format" in _message(_write(tmp_path, "a.xlsx", b"PK"))
    assert "unknown-enc" in _message(
        _write(tmp_path, "x.csv", b"a\n1\n"), CsvOptions(encoding="unknown-enc")
    )


def test_duplicate_and_empty_column_names_are_refused(tmp_path: Path) -> None:
    assert "appears twice" in _message(_write(tmp_path, "dup.csv", b"a,a\n1,2\n"))
    assert "empty name" in _message(_write(tmp_path, "idx.csv", b",a\n0,2\n"))


def test_a_frame_with_mixed_types_gets_a_clear_error() -> None:
    with pytest.raises(DataError, match="one type"), stage(pd.DataFrame({"x": [1, "a", 2.5]})):
        pass
