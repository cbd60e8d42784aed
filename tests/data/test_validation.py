"""Validation: every check finds its injected defect, names the column, counts the rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from modelyard.data.datasets import add_dataset
from modelyard.data.schema import ColumnSchema, Schema
from modelyard.data.validation import validate, validate_dataset, validate_file
from modelyard.project import Project

SCHEMA = Schema(
    (
        ColumnSchema("id", "integer", False, 0, None, None, True, "id"),
        ColumnSchema("age", "integer", False, 18, 99),
        ColumnSchema("income", "float", True, 0.0, None),
        ColumnSchema("city", "category", True, categories=("Lyon", "Paris")),
        ColumnSchema("at", "datetime", False, "2024-01-01T00:00:00", "2024-12-31T00:00:00"),
    )
)


def _good(rows: int = 100) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": np.arange(rows),
            "age": 18 + np.arange(rows) % 80,
            "income": np.linspace(0, 1000, rows),
            "city": ["Paris", "Lyon"] * (rows // 2),
            "at": pd.date_range("2024-01-01", periods=rows, freq="h"),
        }
    )


def test_clean_data_passes() -> None:
    report = validate(_good(), SCHEMA)
    assert report.passed and report.issues == ()
    assert (report.n_rows, report.n_columns) == (100, 5)


def test_out_of_range_values_are_counted_with_example_rows() -> None:
    frame = _good()
    frame.loc[[3, 40, 41, 42, 43, 44, 45], "age"] = [5, 120, 130, 140, 150, 160, 170]
    frame.loc[7, "at"] = pd.Timestamp("2023-06-01")
    report = validate(frame, SCHEMA)
    below, above = report.issue("age", "below_min"), report.issue("age", "above_max")
    assert below is not None and (below.rows, below.examples, below.values) == (1, (3,), ("5",))
    assert above is not None and above.rows == 6 and above.examples == (40, 41, 42, 43, 44)
    assert "above the maximum 99" in above.message
    early = report.issue("at", "below_min")
    assert early is not None and early.examples == (7,)
    assert not report.passed


def test_bounds_of_any_numeric_type_compare() -> None:
    schema = Schema((ColumnSchema("n", "integer", min=2.5, max=10**20),))
    report = validate(pd.DataFrame({"n": [1, 3, 2**62]}), schema)
    below = report.issue("n", "below_min")
    assert below is not None and below.examples == (0,)
    assert report.issue("n", "above_max") is None


def test_row_numbers_continue_across_batches() -> None:
    frame = _good()
    frame.loc[[10, 90], "age"] = 1
    frame.loc[95, "id"] = 12  # repeats row 12, which sits in an earlier batch
    batches = pa.Table.from_pandas(frame, preserve_index=False).to_batches(max_chunksize=16)
    report = validate(iter(batches), SCHEMA)
    below, duplicate = report.issue("age", "below_min"), report.issue("id", "duplicate")
    assert below is not None and below.examples == (10, 90)
    assert duplicate is not None and (duplicate.rows, duplicate.examples) == (1, (95,))


def test_nulls_unknown_categories_and_type_mismatches() -> None:
    frame = _good().astype({"age": "float64"})
    frame.loc[2, "age"] = np.nan
    frame.loc[4, "age"] = 30.5
    frame.loc[[6, 8], "city"] = ["Nice", "Marseille"]
    frame.loc[9, "city"] = None  # nullable: fine
    frame["income"] = frame["income"].astype(str)
    report = validate(frame, SCHEMA)
    null, kind = report.issue("age", "null"), report.issue("age", "type")
    assert null is not None and null.examples == (2,)
    assert kind is not None and kind.examples == (4,) and "not whole numbers" in kind.message
    unknown = report.issue("city", "unknown_category")
    assert unknown is not None and unknown.values == ("'Nice'", "'Marseille'")
    text = report.issue("income", "type")
    assert text is not None and text.rows == 100 and "string values where float" in text.message
    assert report.issue("income", "below_min") is None, "a mistyped column skips value checks"


def test_a_schema_change_is_named() -> None:
    frame = _good().drop(columns=["city"]).assign(age=lambda f: f["age"].astype(str), extra=1)
    report = validate(frame, SCHEMA)
    assert report.issue("city", "missing_column") is not None
    assert report.issue("extra", "unexpected_column") is not None
    changed = report.issue("age", "type")
    assert changed is not None and "string values where integer is expected" in changed.message


def test_a_category_spelled_three_ways_is_a_warning_with_its_variants() -> None:
    frame = _good()
    frame.loc[[5, 11], "city"] = ["paris ", "PARIS"]
    schema = Schema(
        tuple(
            ColumnSchema("city", "category", True, categories=None) if c.name == "city" else c
            for c in SCHEMA.columns
        )
    )
    report = validate(frame, schema)
    assert report.passed, "spelling variants warn; they do not fail"
    (warning,) = report.warnings
    assert (warning.column, warning.check) == ("city", "spelling")
    assert warning.values == ("Paris", "paris ", "PARIS")
    assert (warning.rows, warning.examples) == (2, (5, 11))
    assert "'Paris' is spelled 3 ways" in warning.message


def test_a_frame_mixing_types_in_a_column_fails_the_type_check() -> None:
    frame = _good().astype({"age": object})
    frame.loc[3, "age"] = "unknown"
    report = validate(frame, SCHEMA)
    mismatch = report.issue("age", "type")
    assert mismatch is not None and mismatch.rows == 100


def test_a_registered_version_and_a_file_are_validated_in_batches(
    project: Project, tmp_path: Path
) -> None:
    path = tmp_path / "people.csv"
    _good(200).to_csv(path, index=False)
    version = add_dataset(project, "people", path)
    seen: list[tuple[int, int]] = []
    assert validate_dataset(project, version.ref, progress=lambda d, t: seen.append((d, t))).passed
    assert seen[-1] == (200, 200)

    bad = tmp_path / "bad.csv"
    frame = _good(200)
    frame.loc[150, "age"] = 200
    frame.to_csv(bad, index=False)
    report = validate_file(bad, version.schema)
    above = report.issue("age", "above_max")
    assert above is not None and above.examples == (150,)
    assert validate_dataset(project, version.ref, SCHEMA).issue("city", "unknown_category") is None


@pytest.mark.parametrize("rows", [0, 3])
def test_reports_serialise(rows: int) -> None:
    report = validate(_good(10).head(rows), SCHEMA)
    data = report.to_dict()
    assert data["passed"] is True and data["n_rows"] == rows
    assert report.n_columns == 5, "an empty frame still shows its columns"
