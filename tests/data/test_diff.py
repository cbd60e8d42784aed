"""Diffs between versions: schema changes and distribution shifts with reference bins."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from modelyard.data.datasets import add_dataset
from modelyard.data.diff import diff, psi, schema_changes
from modelyard.data.schema import ColumnSchema, Schema
from modelyard.project import Project


def _frame(rows: int = 2000, shift: float = 0.0, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "age": rng.integers(18, 80, rows),
            "income": rng.normal(50 + shift, 10, rows),
            "region": rng.choice(["north", "south", "east"], rows, p=[0.5, 0.3, 0.2]),
            "note": [f"n{i}" for i in range(rows)],
        }
    )


def test_psi_matches_the_formula_with_epsilon_for_empty_bins() -> None:
    assert psi(np.array([50, 50]), np.array([50, 50])) == 0.0
    expected = (0.8 - 0.5) * math.log(0.8 / 0.5) + (0.2 - 0.5) * math.log(0.2 / 0.5)
    assert psi(np.array([5, 5]), np.array([8, 2])) == pytest.approx(expected)
    with_empty = (1.0 - 1e-4) * math.log(1.0 / 1e-4) + (1e-4 - 1.0) * math.log(1e-4 / 1.0)
    assert psi(np.array([10, 0]), np.array([0, 10])) == pytest.approx(with_empty)


def test_schema_changes_name_every_difference() -> None:
    a = Schema(
        (
            ColumnSchema("age", "integer", False, 18, 80),
            ColumnSchema("city", "category", False, categories=("Lyon", "Paris")),
            ColumnSchema("gone", "float"),
        )
    )
    b = Schema(
        (
            ColumnSchema("age", "float", True, 18, 80),
            ColumnSchema("city", "category", False, categories=("Nice", "Paris")),
            ColumnSchema("new", "string"),
        )
    )
    found = {(c.column, c.change): c for c in schema_changes(a, b)}
    assert set(found) == {
        ("gone", "dropped"),
        ("new", "added"),
        ("age", "type"),
        ("age", "nullable"),
        ("city", "categories_added"),
        ("city", "categories_removed"),
    }
    assert found["age", "type"].message == "type integer → float"
    assert found["city", "categories_added"].after == ["Nice"]
    ranged = Schema((ColumnSchema("age", "integer", False, 18, 95),))
    (change,) = schema_changes(Schema((a.columns[0],)), ranged)
    assert (change.change, change.before, change.after) == ("max", 80, 95)


def test_identical_versions_show_no_change(project: Project) -> None:
    frame = _frame()
    add_dataset(project, "d", frame)
    add_dataset(project, "d", frame, kind="clean")
    result = diff(project, "d@1", "d@2")
    assert result.schema_changes == ()
    assert {s.column for s in result.columns} == {"age", "income", "region"}, (
        "free text is not compared"
    )
    assert all(s.psi == pytest.approx(0.0) and s.level == "none" for s in result.columns)


def test_a_shifted_column_is_major_and_a_resampled_one_is_not(project: Project) -> None:
    add_dataset(project, "d", _frame(seed=0))
    add_dataset(project, "d", _frame(shift=15.0, seed=1))
    result = diff(project, "d@1", "d@2")
    income, age = result.shift("income"), result.shift("age")
    assert income is not None and age is not None
    assert income.level == "major" and income.psi > 0.25
    assert income.stats["mean"][1] - income.stats["mean"][0] == pytest.approx(15, abs=1)
    assert set(income.stats) == {"mean", "std", "p05", "p25", "p50", "p75", "p95"}
    assert age.level == "none" and age.psi < 0.1


def test_category_shares_and_new_categories(project: Project) -> None:
    before = _frame()
    after = before.copy()
    after.loc[:399, "region"] = "west"
    after.loc[400:449, "income"] = np.nan
    add_dataset(project, "d", before)
    add_dataset(project, "d", after)
    result = diff(project, "d@1", "d@2")
    region = result.shift("region")
    assert region is not None and region.kind == "categorical" and region.level == "major"
    value, share_a, share_b = region.shares[0]
    assert (value, share_a, share_b) == ("west", 0.0, 0.2)
    assert result.change("region", "categories_added") is not None
    income = result.shift("income")
    assert income is not None and income.null_share == (0.0, 0.025)
    assert result.change("income", "nullable") is not None


def test_a_dropped_column_and_a_changed_type_are_reported(project: Project) -> None:
    before = _frame()
    after = before.drop(columns=["region"]).assign(age=before["age"].astype(float) + 0.5)
    add_dataset(project, "d", before)
    add_dataset(project, "d", after)
    result = diff(project, "d@1", "d@2")
    assert result.change("region", "dropped") is not None
    changed = result.change("age", "type")
    assert changed is not None and (changed.before, changed.after) == ("integer", "float")
    assert result.shift("age") is not None, "integer → float is still numeric and compared"
