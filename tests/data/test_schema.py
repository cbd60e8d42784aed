"""Schema inference batch by batch, editing as YAML, roles, and the serving signature."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from modelyard.data.demo import make_loans
from modelyard.data.encoding import FeatureEncoder
from modelyard.data.schema import (
    CATEGORY_LIMIT,
    ColumnSchema,
    KeySet,
    Schema,
    infer_schema,
    roles_from_spec,
)
from modelyard.errors import DataError
from modelyard.project import Project


def _infer(frame: pd.DataFrame, rows_per_batch: int = 7) -> Schema:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    return infer_schema(table.to_batches(max_chunksize=rows_per_batch))


def test_types_bounds_and_nulls_are_inferred_across_batches() -> None:
    frame = pd.DataFrame(
        {
            "n": np.arange(100) - 10,
            "x": [float(i) if i % 9 else np.nan for i in range(100)],
            "b": [i % 2 == 0 for i in range(100)],
            "c": ["red", "green", "blue", None] * 25,
            "t": pd.date_range("2024-01-01", periods=100, freq="D"),
        }
    )
    schema = _infer(frame)
    n, x, b, c, t = schema.columns
    assert (n.type, n.min, n.max, n.nullable, n.unique) == ("integer", -10, 89, False, True)
    assert (x.type, x.min, x.max, x.nullable) == ("float", 1.0, 98.0, True)
    assert (b.type, b.nullable, b.unique) == ("boolean", False, False)
    assert (c.type, c.categories, c.nullable) == ("category", ("blue", "green", "red"), True)
    assert (t.type, t.min, t.max) == ("datetime", "2024-01-01T00:00:00", "2024-04-09T00:00:00")
    assert not t.unique, "distinct timestamps are a coincidence, not a rule"


def test_many_distinct_strings_are_free_text_not_categories() -> None:
    many = pd.DataFrame({"s": [f"v{i}" for i in range(CATEGORY_LIMIT + 1)] * 3})
    assert _infer(many, 500).column("s").type == "string"
    mostly_distinct = pd.DataFrame({"s": [f"name {i}" for i in range(100)]})
    column = _infer(mostly_distinct).column("s")
    assert (column.type, column.categories, column.unique) == ("string", None, True)


def test_a_duplicate_in_a_later_batch_makes_a_column_not_unique() -> None:
    values = list(range(50))
    frame = pd.DataFrame({"id": [*values, 3], "s": [f"k{v}" for v in values] + ["k3"]})
    schema = _infer(frame, rows_per_batch=10)
    assert not schema.column("id").unique
    assert not schema.column("s").unique


def test_key_set_flags_repeats_within_and_across_calls() -> None:
    keys = KeySet()
    first = keys.add(np.array([5, 1, 5, 9], dtype=np.uint64))
    assert first.tolist() == [False, False, True, False]
    second = keys.add(np.array([2, 9, 2], dtype=np.uint64))
    assert second.tolist() == [False, True, True]
    assert len(keys) == 4


def test_key_set_gives_up_past_its_limit() -> None:
    keys = KeySet(limit=3)
    keys.add(np.arange(5, dtype=np.uint64))
    assert keys.overflowed and len(keys) == 0


def test_yaml_round_trip_keeps_every_field(tmp_path: Path) -> None:
    schema = Schema(
        (
            ColumnSchema("age", "integer", False, 18, 99, None, False, "feature"),
            ColumnSchema("ratio", "float", True, float("-inf"), 1.5, None, False, "feature"),
            ColumnSchema("city", "category", True, None, None, ("Lyon", "Paris"), False, "pii"),
            ColumnSchema("at", "datetime", False, "2024-01-01T00:00:00", None, role="time"),
        )
    )
    assert Schema.from_yaml(schema.to_yaml()) == schema
    assert Schema.load(schema.save(tmp_path / "s.json")) == schema
    assert Schema.load(schema.save(tmp_path / "s.yaml")) == schema
    assert (tmp_path / "s.yaml").read_text().startswith("# A modelyard data-set schema")


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ({"name": "a", "type": "number"}, "'type' must be one of integer, float"),
        ({"name": "a", "type": "integer", "role": "label"}, "'role' must be one of"),
        ({"name": "a", "type": "integer", "min": "low"}, "'min' must be a number"),
        ({"name": "a", "type": "category", "min": 1}, "applies to number and datetime"),
        ({"name": "a", "type": "integer", "nullable": "no"}, "'nullable' must be true or false"),
        ({"name": "a", "type": "integer", "colour": 1}, "unknown field(s) ['colour']"),
        ({"type": "integer"}, "'name' must be a non-empty string"),
    ],
)
def test_a_bad_edit_is_named_with_file_and_column(entry: dict[str, object], expected: str) -> None:
    with pytest.raises(DataError) as caught:
        Schema.from_dict({"columns": [{"name": "ok", "type": "float"}, entry]}, "edited.yaml")
    assert caught.value.message.startswith("edited.yaml: columns[1]")
    assert expected in caught.value.message


def test_yaml_syntax_errors_name_the_line() -> None:
    with pytest.raises(DataError, match=r"edited.yaml, line 3: not valid YAML"):
        Schema.from_yaml("columns:\n  - name: a\n  type: [unclosed\n", "edited.yaml")
    with pytest.raises(DataError, match="listed twice"):
        Schema.from_dict({"columns": [{"name": "a", "type": "float"}] * 2})
    with pytest.raises(DataError, match="'columns' list"):
        Schema.from_dict(["not", "a", "mapping"])


def test_roles_come_from_the_spec(project: Project) -> None:
    names = list(make_loans(100).columns)
    roles = roles_from_spec(project.spec, names)
    assert roles["default"] == "target"
    assert roles["loan_id"] == "id" and roles["applied_at"] == "time"
    assert roles["gender"] == "sensitive" and roles["email"] == "pii"
    assert roles["period"] == "excluded" and roles["age"] == "feature"


def test_the_encoder_built_from_the_schema_matches_one_fitted_on_the_data(
    project: Project,
) -> None:
    frame = make_loans(2000)
    schema = _infer(frame, 500).with_roles(roles_from_spec(project.spec, list(frame.columns)))
    features = project.spec.feature_columns(list(frame.columns))
    from_schema = FeatureEncoder.from_schema(schema)
    fitted = FeatureEncoder.fit(frame, features)
    assert from_schema.fields == fitted.fields
    np.testing.assert_array_equal(from_schema.transform(frame), fitted.transform(frame))


def test_free_text_cannot_be_a_model_input() -> None:
    schema = Schema((ColumnSchema("note", "string"), ColumnSchema("flag", "boolean")))
    with pytest.raises(DataError, match="'note' is string without a list of categories"):
        schema.feature_fields()
    assert schema.feature_fields(["flag"])[0].categories == ("False", "True")
