"""Columns as values and counts, the fitted bins, and the stored baseline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy import stats as sps

from modelyard.errors import DataError
from modelyard.monitor.baseline import (
    UNSEEN,
    Baseline,
    fit_baseline,
    fit_column,
    quantiles,
    summarise,
)
from modelyard.monitor.samples import categorical_sample, numeric_sample, open_table


def _expanded(values: np.ndarray, counts: np.ndarray | None) -> np.ndarray:
    return values if counts is None else np.repeat(values, counts)


@pytest.mark.parametrize(
    "values",
    [
        np.random.default_rng(0).normal(size=5_000),  # all distinct: sorted
        np.random.default_rng(1).normal(size=5_000).round(1),  # repeats: hashed
        np.random.default_rng(2).poisson(3, 5_000).astype(float),
    ],
)
def test_numeric_sample_holds_every_finite_value_once_with_its_count(values: np.ndarray) -> None:
    values = values.copy()
    values[::97] = np.nan
    values[5] = np.inf
    sample = numeric_sample(pa.array(values, from_pandas=False))
    finite = values[np.isfinite(values)]
    assert sample.missing == len(values) - len(finite)
    assert np.all(np.diff(sample.values) > 0)
    assert np.array_equal(_expanded(sample.values, sample.counts), np.sort(finite))
    mean, std = sample.mean_std()
    assert mean == pytest.approx(np.mean(finite), rel=1e-12)
    assert std == pytest.approx(np.std(finite), rel=1e-12)


def test_nulls_and_negative_zero_are_handled() -> None:
    array = pa.array([0.0, -0.0, None, 1.0, 0.0, 1.0] * 10)
    sample = numeric_sample(array)
    assert sample.missing == 10
    assert sample.values.tolist() == [0.0, 1.0]
    assert sample.counts is not None and sample.counts.tolist() == [30, 20]


def test_categorical_sample_counts_plain_and_dictionary_text_alike() -> None:
    values = ["b", "a", None, "b", "c", "b", None]
    plain = categorical_sample(pa.chunked_array([pa.array(values)]))
    encoded = categorical_sample(
        pa.chunked_array(
            [pa.array(values[:4]).dictionary_encode(), pa.array(values[4:]).dictionary_encode()]
        )
    )
    for sample in (plain, encoded):
        assert sample.categories == ("a", "b", "c")
        assert sample.counts.tolist() == [1, 3, 1]
        assert sample.missing == 2
    flags = categorical_sample(pa.array([True, False, True, None]))
    assert flags.categories == ("false", "true") and flags.counts.tolist() == [1, 2]


def test_quantile_bins_are_numpys_deciles_of_the_reference() -> None:
    values = np.random.default_rng(3).lognormal(size=2_001).round(2)
    column = fit_column("x", pa.array(values))
    expected = np.unique(np.quantile(values, np.linspace(0, 1, 11)[1:-1]))
    assert column.bins.kind == "quantiles"
    np.testing.assert_allclose(column.bins.edges, expected, rtol=0, atol=1e-12)
    # open-ended outer bins, right-closed: every value in exactly one bin
    slots = np.searchsorted(expected, values, side="left")
    assert column.counts.tolist() == np.bincount(slots, minlength=len(expected) + 1).tolist()
    assert column.counts.sum() == len(values)


def test_quantiles_from_counts_equal_numpy_on_the_expanded_values() -> None:
    rng = np.random.default_rng(4)
    values = rng.integers(0, 9, 1_000).astype(float)
    sample = numeric_sample(pa.array(values))
    levels = np.linspace(0, 1, 21)
    np.testing.assert_array_equal(quantiles(sample, levels), np.quantile(values, levels))


def test_few_distinct_numbers_are_binned_by_value_with_an_unseen_bin() -> None:
    column = fit_column("term", pa.array([36, 60, 36, 36, None]))
    assert column.bins.kind == "values"
    assert column.bins.labels == ["36", "60", UNSEEN]
    assert column.counts.tolist() == [3, 1, 0]
    current = numeric_sample(pa.array([36.0, 48.0, 60.0, 72.0]))
    assert column.bins.count(current).tolist() == [1, 1, 2]


def test_categories_never_seen_in_the_reference_land_in_the_unseen_bin() -> None:
    column = fit_column("region", pa.array(["north", "south", "north"]))
    assert column.bins.labels == ["north", "south", UNSEEN]
    current = categorical_sample(pa.array(["east", "north", "west", None]))
    assert column.bins.count(current).tolist() == [1, 0, 2]


def test_stored_baseline_round_trips_through_json() -> None:
    rng = np.random.default_rng(5)
    frame = pd.DataFrame(
        {
            "amount": rng.lognormal(8, 1, 3_000).round(2),
            "term": rng.choice([36, 60], 3_000),
            "purpose": rng.choice(["car", "home", "other"], 3_000),
        }
    )
    frame.loc[::50, "amount"] = np.nan
    baseline = fit_baseline(frame)
    restored = Baseline.from_dict(json.loads(json.dumps(baseline.to_dict())))
    assert restored.names == ["amount", "term", "purpose"]
    for before, after in zip(baseline.columns, restored.columns, strict=True):
        assert (after.kind, after.rows, after.missing, after.std) == (
            before.kind,
            before.rows,
            before.missing,
            before.std,
        )
        assert after.bins.labels == before.bins.labels
        assert after.counts.tolist() == before.counts.tolist()
    amount = restored.column("amount").sample
    assert amount is not None
    np.testing.assert_array_equal(
        np.sort(frame["amount"].dropna()), _expanded(amount.values, amount.counts)
    )


def test_a_stored_large_column_keeps_order_statistics_within_the_promised_error() -> None:
    values = np.random.default_rng(6).normal(size=50_000)
    sample = numeric_sample(pa.array(values))
    kept = summarise(sample, 1_000)
    assert len(kept.values) == 1_000
    grid = np.linspace(-4, 4, 401)
    real = np.searchsorted(np.sort(values), grid, side="right") / len(values)
    stored = np.searchsorted(kept.values, grid, side="right") / len(kept.values)
    assert np.max(np.abs(real - stored)) <= 1 / 999 + 1e-12
    # Wasserstein between the full sample and its summary is small next to the spread
    assert sps.wasserstein_distance(values, kept.values) < 0.01


def test_fit_baseline_leaves_out_free_text_and_timestamps_unless_named() -> None:
    rows = 1_200
    frame = pd.DataFrame(
        {
            "id": [f"row-{i}" for i in range(rows)],
            "when": pd.date_range("2025-01-01", periods=rows, freq="h"),
            "x": np.arange(rows, dtype=float),
        }
    )
    assert fit_baseline(frame).names == ["x"]
    assert fit_baseline(frame, ["id", "x"]).names == ["id", "x"]
    with pytest.raises(DataError, match="timestamp"):
        fit_baseline(frame, ["when"])


def test_a_parquet_file_is_read_one_column_at_a_time(tmp_path: Path) -> None:
    path = tmp_path / "data.parquet"
    pq.write_table(pa.table({"a": [1.0, 2.0], "b": ["x", "y"]}), path)
    table = open_table(path)
    assert table.names == ["a", "b"] and table.rows == 2
    assert pa.types.is_dictionary(table.column("b").type)  # text is read as codes
    with pytest.raises(DataError, match="no column 'c'"):
        table.column("c")
    with pytest.raises(DataError, match="Parquet"):
        open_table(tmp_path / "missing.parquet")


def test_damaged_baselines_are_refused_with_a_fix() -> None:
    with pytest.raises(DataError, match="fit_baseline"):
        Baseline.from_dict({"columns": []})
    with pytest.raises(DataError, match="fit it again"):
        Baseline.from_dict({"format": "modelyard.drift-baseline/1", "columns": [{"name": "x"}]})
