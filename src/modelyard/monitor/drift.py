"""Data and prediction drift: does current data still look like the reference?

    report = compare(train_frame, recent_frame, ["income", "purpose"], thresholds=spec.drift)
    report = detect_drift(baseline, recent_frame)        # a stored baseline (monitor.baseline)
    report = compare_versions(project, "loans@1", "loans@2")
    report.drifted_features, report.dataset_drifted, report.feature("income").value

Each column is read once, its baseline fitted (``monitor.baseline``: bins
from the reference only) and compared with the current column in one
vectorised pass (``monitor.stats``); only one column of each side is in memory
at a time, and columns run on ``workers`` threads.

**The deciding test** of a column (thresholds from the spec's ``drift:``
section, ``DriftThresholds``):

==============================  ==============================  ===========================
column                          a side has < small_sample       both sides have more
                                (1,000) rows with a value
==============================  ==============================  ===========================
numbers                         KS: drift when p < ks_pvalue    Wasserstein / reference std
                                (0.01); chi-square when they    ≥ wasserstein (0.1)
                                have ≤ 5 distinct values
categories (text, booleans)     chi-square: drift when          Jensen-Shannon (base 2)
                                p < chi2_pvalue (0.01)          ≥ js (0.1)
a column in drift.features      PSI ≥ its own limit             PSI ≥ its own limit
==============================  ==============================  ===========================

Numbers keep Wasserstein even with few distinct values (a count, a flag):
it weighs how far values move, which bins ignore — a mean of 0.30 → 0.45
delinquencies is a quarter of a standard deviation, while the JS distance
of its value shares stays near 0.1. (Evidently picks JS for numbers with at
most 5 distinct values; both are in ``statistics``.)

``tests={"income": "psi"}`` picks another test for a column (``TESTS``; KS
and Wasserstein need numbers). Large samples make every p-value tiny, so
above ``small_sample`` rows only effect sizes decide; every statistic that
applies is still computed and reported (``FeatureDrift.statistics``: psi,
jensenshannon; wasserstein for numbers; chi2 and chi2_pvalue for value or
category bins), except KS (``ks``, ``ks_pvalue``), computed only when KS
decides or a side is small: on large samples it costs a second pass over
the values and its p-value is ~0 anyway.

**Missing values** (null, NaN, ±inf) stay out of the distributions and are
compared on their own: the missing rate drifts when the PSI of the
present / missing split reaches ``psi_warn`` (0.1: for example 0 % → 3 %,
2 % → 10 % or 10 % → 25 %), or, below ``small_sample`` rows, when a
chi-square test of that split gives p < ``chi2_pvalue``. A column drifts when
its distribution or its missing rate does.

**Prediction drift** is the same on score columns (``predictions``), reported
with role ``prediction`` and left out of the data set's drift share. The data
set drifts when at least ``dataset_share`` of its features do.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pyarrow as pa

from modelyard.errors import DataError, InvalidInputError
from modelyard.monitor import stats
from modelyard.monitor.baseline import (
    Baseline,
    ColumnBaseline,
    Kind,
    ReferenceColumns,
    fit_column,
)
from modelyard.monitor.samples import (
    CategoricalSample,
    ColumnTable,
    NumericSample,
    TableSource,
    categorical_sample,
    column_kind,
    numeric_sample,
    open_table,
)
from modelyard.monitor.stats import finite_or_none
from modelyard.spec import DriftThresholds

if TYPE_CHECKING:
    from modelyard.project import Project

__all__ = [
    "TESTS",
    "DriftOptions",
    "DriftReport",
    "FeatureDrift",
    "column_drift",
    "compare",
    "compare_versions",
    "detect_drift",
    "measure_groups",
    "prediction_drift",
    "resolve_columns",
]

TESTS = ("ks", "chi2", "wasserstein", "jensenshannon", "psi")
Role = Literal["feature", "prediction"]
Progress = Callable[[str], None]
_P_VALUE_TESTS = {"ks": "ks_pvalue", "chi2": "chi2_pvalue"}


@dataclass(frozen=True)
class FeatureDrift:
    """One column's drift: the deciding test, its value and threshold, and the missing rates.

    ``value`` is a p-value for ``ks`` and ``chi2`` (drift when below the
    threshold) and a distance otherwise (drift at or above it); None when a
    side has no values. ``shares`` are each bin's share of the rows with a
    value, reference then current, for the labels in ``bins``.
    """

    feature: str
    kind: Kind
    role: Role
    test: str | None
    value: float | None
    threshold: float | None
    distribution_drifted: bool
    missing_reference: float
    missing_current: float
    missing_test: str
    missing_value: float
    missing_drifted: bool
    rows: tuple[int, int]
    statistics: dict[str, float] = field(default_factory=dict)
    bins: tuple[str, ...] = ()
    shares: tuple[tuple[float, ...], tuple[float, ...]] = ((), ())

    @property
    def drifted(self) -> bool:
        return self.distribution_drifted or self.missing_drifted

    @property
    def missing_change(self) -> float:
        """Current minus reference missing rate (0.05: five points more rows missing)."""
        return self.missing_current - self.missing_reference

    def to_dict(self) -> dict[str, Any]:
        return {
            "feature": self.feature,
            "kind": self.kind,
            "role": self.role,
            "test": self.test,
            "value": finite_or_none(self.value),
            "threshold": self.threshold,
            "drifted": self.drifted,
            "distribution_drifted": self.distribution_drifted,
            "missing": {
                "reference": self.missing_reference,
                "current": self.missing_current,
                "change": self.missing_change,
                "test": self.missing_test,
                "value": finite_or_none(self.missing_value),
                "drifted": self.missing_drifted,
            },
            "rows": list(self.rows),
            "statistics": {k: finite_or_none(v) for k, v in self.statistics.items()},
            "bins": list(self.bins),
            "reference_shares": list(self.shares[0]),
            "current_shares": list(self.shares[1]),
        }


@dataclass(frozen=True)
class DriftReport:
    """Every compared column of ``current`` against ``reference``, and the verdict."""

    reference: str
    current: str
    rows: tuple[int, int]
    features: tuple[FeatureDrift, ...]
    thresholds: DriftThresholds
    skipped: tuple[tuple[str, str], ...] = ()

    @property
    def drifted_features(self) -> list[str]:
        """The drifted columns with role ``feature`` (predictions are apart)."""
        return [f.feature for f in self.features if f.role == "feature" and f.drifted]

    @property
    def drift_share(self) -> float:
        count = sum(f.role == "feature" for f in self.features)
        return len(self.drifted_features) / count if count else 0.0

    @property
    def dataset_drifted(self) -> bool:
        return bool(self.drifted_features) and self.drift_share >= self.thresholds.dataset_share

    @property
    def prediction_drifted(self) -> bool:
        return any(f.drifted for f in self.features if f.role == "prediction")

    def feature(self, name: str) -> FeatureDrift:
        for found in self.features:
            if found.feature == name:
                return found
        raise InvalidInputError(
            f"The drift report has no column '{name}'; "
            f"it compared {[f.feature for f in self.features]}."
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": "modelyard.drift/1",
            "reference": self.reference,
            "current": self.current,
            "rows": list(self.rows),
            "dataset_drifted": self.dataset_drifted,
            "drift_share": self.drift_share,
            "drifted_features": self.drifted_features,
            "prediction_drifted": self.prediction_drifted,
            "thresholds": self.thresholds.model_dump(),
            "features": [f.to_dict() for f in self.features],
            "skipped": [{"column": c, "reason": r} for c, r in self.skipped],
        }


# ---------------------------------------------------------------------- entry points


def compare(
    reference: TableSource,
    current: TableSource,
    columns: Sequence[str] | None = None,
    *,
    predictions: Sequence[str] = (),
    thresholds: DriftThresholds | None = None,
    tests: Mapping[str, str] | None = None,
    categorical: Iterable[str] = (),
    reference_name: str = "reference",
    current_name: str = "current",
    workers: int | None = None,
    progress: Progress | None = None,
) -> DriftReport:
    """Compare ``current`` with ``reference`` (DataFrames, Arrow tables or Parquet paths).

    ``columns`` default to every column both have, except timestamps and
    free text (more than 1,000 distinct values), which are listed in
    ``skipped``; ``predictions`` are score columns (prediction drift).
    ``categorical`` names numeric columns to treat as categories.
    """
    ref_columns = ReferenceColumns(reference, {*(columns or ()), *predictions}, categorical)
    cur_table = open_table(current, "the current data")
    names = resolve_columns(columns, predictions, ref_columns.names, cur_table.names)
    return _measure(
        names,
        ref_columns.fit,
        cur_table,
        DriftOptions.of(thresholds, tests, predictions, progress),
        (reference_name, current_name, ref_columns.rows),
        workers,
    )


def detect_drift(
    baseline: Baseline,
    current: TableSource,
    columns: Sequence[str] | None = None,
    *,
    predictions: Sequence[str] = (),
    thresholds: DriftThresholds | None = None,
    tests: Mapping[str, str] | None = None,
    reference_name: str = "baseline",
    current_name: str = "current",
    workers: int | None = None,
    progress: Progress | None = None,
) -> DriftReport:
    """Compare ``current`` with a fitted (or stored) baseline, column by column."""
    cur_table = open_table(current, "the current data")
    names = list(columns) if columns is not None else baseline.names
    for name in [*names, *predictions]:
        baseline.column(name)  # fails early, naming the baseline's columns
    names += [p for p in predictions if p not in names]
    return _measure(
        names,
        baseline.column,
        cur_table,
        DriftOptions.of(thresholds, tests, predictions, progress),
        (reference_name, current_name, baseline.rows),
        workers,
    )


def compare_versions(
    project: Project,
    reference: str,
    current: str,
    columns: Sequence[str] | None = None,
    *,
    tests: Mapping[str, str] | None = None,
    progress: Progress | None = None,
) -> DriftReport:
    """Compare two data set versions (``NAME@V``) with the project spec's drift thresholds.

    ``columns`` default to the reference's feature columns (schema roles from
    the spec) of a number, boolean or category type that the current version has too.
    """
    from modelyard.data.datasets import get_version

    ref, cur = get_version(project, reference), get_version(project, current)
    if columns is None:
        kinds = ("integer", "float", "boolean", "category")
        columns = [
            c.name
            for c in ref.schema.columns
            if c.role == "feature" and c.type in kinds and c.name in cur.schema
        ]
        if not columns:
            raise DataError(
                f"{ref.ref} and {cur.ref} share no feature column of a number, boolean or "
                "category type; name the columns to compare (--columns)."
            )
    return compare(
        project.artifacts.local_path(ref.blob),
        project.artifacts.local_path(cur.blob),
        columns,
        thresholds=project.spec.drift,
        tests=tests,
        reference_name=ref.ref,
        current_name=cur.ref,
        progress=progress,
    )


def prediction_drift(
    reference_scores: Any,
    current_scores: Any,
    *,
    thresholds: DriftThresholds | None = None,
    name: str = "prediction",
) -> FeatureDrift:
    """Drift of a model's scores (or predicted labels): the column tests on one score column."""
    column = fit_column(name, _as_array(reference_scores, "reference_scores"))
    return column_drift(
        column, _as_array(current_scores, "current_scores"), thresholds, role="prediction"
    )


# ---------------------------------------------------------------------- one column


def column_drift(
    column: ColumnBaseline,
    current: pa.ChunkedArray | pa.Array,
    thresholds: DriftThresholds | None = None,
    *,
    test: str | None = None,
    role: Role = "feature",
) -> FeatureDrift:
    """Compare one current column with its baseline: statistics, deciding test, missing rates."""
    limits = thresholds or DriftThresholds()
    sample = _current_sample(column, current)
    counts = column.bins.count(sample)
    present = min(column.present, sample.present)
    chosen, threshold = choose_test(column, present, limits, test)
    with_ks = chosen == "ks" or present < limits.small_sample
    statistics = _statistics(column, sample, counts, with_ks=with_ks)
    value = statistics.get(_P_VALUE_TESTS.get(chosen, chosen)) if present else None
    if value is None:
        drifted = False
    elif chosen in _P_VALUE_TESTS:
        drifted = value < threshold
    else:
        drifted = value >= threshold
    missing_test, missing_value, missing_drifted = missing_drift(column, sample, limits)
    return FeatureDrift(
        feature=column.name,
        kind=column.kind,
        role=role,
        test=chosen if value is not None else None,
        value=value,
        threshold=threshold if value is not None else None,
        distribution_drifted=bool(drifted),
        missing_reference=_share(column.missing, column.rows),
        missing_current=_share(sample.missing, sample.rows),
        missing_test=missing_test,
        missing_value=missing_value,
        missing_drifted=missing_drifted,
        rows=(column.rows, sample.rows),
        statistics=statistics,
        bins=tuple(column.bins.labels),
        shares=(_shares(column.counts), _shares(counts)),
    )


def choose_test(
    column: ColumnBaseline, present: int, thresholds: DriftThresholds, test: str | None = None
) -> tuple[str, float]:
    """The deciding test of a column and its threshold (see the module docstring)."""
    limit = thresholds.features.get(column.name)
    if test is None and limit is not None:
        return "psi", limit
    if test is None:
        if present >= thresholds.small_sample:
            test = "wasserstein" if column.kind == "numeric" else "jensenshannon"
        else:
            test = "ks" if column.bins.kind == "quantiles" else "chi2"
    if test not in TESTS:
        raise InvalidInputError(
            f"Unknown drift test {test!r} for column '{column.name}'; "
            f"use one of {', '.join(TESTS)}."
        )
    if test in ("ks", "wasserstein") and column.kind != "numeric":
        raise InvalidInputError(
            f"The {test} test needs numbers, and column '{column.name}' holds categories; "
            "use chi2, jensenshannon or psi."
        )
    thresholds_by_test = {
        "ks": thresholds.ks_pvalue,
        "chi2": thresholds.chi2_pvalue,
        "wasserstein": thresholds.wasserstein,
        "jensenshannon": thresholds.js,
        "psi": limit if limit is not None else thresholds.psi,
    }
    return test, thresholds_by_test[test]


def missing_drift(
    column: ColumnBaseline, sample: NumericSample | CategoricalSample, thresholds: DriftThresholds
) -> tuple[str, float, bool]:
    """(test, value, drifted) of the missing rate: PSI of present / missing, or chi-square."""
    reference = np.array([column.present, column.missing])
    current = np.array([sample.present, sample.missing])
    if min(column.rows, sample.rows) < thresholds.small_sample:
        p_value = stats.chi_square(reference, current)[1]
        return "chi2", p_value, p_value < thresholds.chi2_pvalue
    value = stats.psi(reference, current)
    return "psi", value, value >= thresholds.psi_warn


def _current_sample(
    column: ColumnBaseline, current: pa.ChunkedArray | pa.Array
) -> NumericSample | CategoricalSample:
    if column.kind == "categorical":
        return categorical_sample(current)
    if column_kind(current, column.name) != "numeric":
        raise DataError(
            f"Column '{column.name}' holds numbers in the reference but {current.type} values in "
            "the current data; give both the same type."
        )
    return numeric_sample(current)


def _statistics(
    column: ColumnBaseline,
    sample: NumericSample | CategoricalSample,
    counts: np.ndarray,
    *,
    with_ks: bool,
) -> dict[str, float]:
    if column.present == 0 or sample.present == 0:
        return {}
    found = {
        "psi": stats.psi(column.counts, counts),
        "jensenshannon": stats.jensen_shannon(column.counts, counts),
    }
    if column.bins.kind != "quantiles":
        found["chi2"], found["chi2_pvalue"] = stats.chi_square(column.counts, counts)
    if isinstance(sample, NumericSample) and column.sample is not None:
        reference, scale = column.sample, max(column.std or 0.0, stats.STD_FLOOR)
        arrays = (reference.values, sample.values, reference.counts, sample.counts)
        if not with_ks:  # KS and its p-value say little on large samples; skip the extra pass
            found["wasserstein"] = stats.wasserstein(*arrays) / scale
            return found
        distance, statistic = stats.sample_distances(*arrays)
        found["wasserstein"], found["ks"] = distance / scale, statistic
        exact = None
        if max(column.present, sample.present) <= stats.KS_EXACT_LIMIT:
            exact = (_expanded(reference), _expanded(sample))
        found["ks_pvalue"] = stats.ks_pvalue(statistic, column.present, sample.present, exact)
    return found


# ---------------------------------------------------------------------- many columns


@dataclass(frozen=True)
class DriftOptions:
    """How columns are compared: thresholds, a test per column, score columns, progress."""

    thresholds: DriftThresholds = field(default_factory=DriftThresholds)
    tests: Mapping[str, str] = field(default_factory=dict)
    predictions: Sequence[str] = ()
    progress: Progress | None = None

    @classmethod
    def of(
        cls,
        thresholds: DriftThresholds | None,
        tests: Mapping[str, str] | None,
        predictions: Sequence[str],
        progress: Progress | None,
    ) -> DriftOptions:
        return cls(thresholds or DriftThresholds(), dict(tests or {}), tuple(predictions), progress)


#: One column's baselines and current values per group (window, segment), or why it is skipped.
GroupColumns = Callable[[str], "tuple[Sequence[ColumnBaseline], Sequence[pa.ChunkedArray]] | str"]


def measure_groups(
    names: Sequence[str],
    columns: GroupColumns,
    groups: int,
    options: DriftOptions,
    workers: int | None = None,
) -> tuple[list[tuple[FeatureDrift, ...]], tuple[tuple[str, str], ...]]:
    """Every column's drift in each of ``groups`` groups, one column at a time (on threads).

    Returns the features of each group, and the skipped columns with the reason.
    """
    unknown = sorted(set(options.tests) - set(names))
    if unknown:
        raise InvalidInputError(
            f"tests names column(s) {unknown} that are not compared; compared: {list(names)}."
        )

    def one(name: str) -> list[FeatureDrift] | tuple[str, str]:
        found = columns(name)
        if isinstance(found, str):
            return name, found
        role: Role = "prediction" if name in options.predictions else "feature"
        test = options.tests.get(name)
        drifts = [
            column_drift(base, values, options.thresholds, test=test, role=role)
            for base, values in zip(*found, strict=True)
        ]
        if options.progress is not None:
            options.progress(name)
        return drifts

    threads = workers or min(4, os.cpu_count() or 1, max(len(names), 1))
    if threads > 1:
        with ThreadPoolExecutor(threads, thread_name_prefix="drift") as pool:
            results = list(pool.map(one, names))
    else:
        results = [one(name) for name in names]
    measured = [r for r in results if isinstance(r, list)]
    skipped = tuple(r for r in results if isinstance(r, tuple))
    return [tuple(r[i] for r in measured) for i in range(groups)], skipped


def _measure(
    names: Sequence[str],
    fit: Callable[[str], ColumnBaseline | str],
    current: ColumnTable,
    options: DriftOptions,
    labels: tuple[str, str, int],
    workers: int | None,
) -> DriftReport:
    def column(name: str) -> tuple[list[ColumnBaseline], list[pa.ChunkedArray]] | str:
        base = fit(name)
        return base if isinstance(base, str) else ([base], [current.column(name)])

    (features,), skipped = measure_groups(names, column, 1, options, workers)
    reference_name, current_name, reference_rows = labels
    return DriftReport(
        reference_name,
        current_name,
        (reference_rows, current.rows),
        features,
        options.thresholds,
        skipped,
    )


def resolve_columns(
    columns: Sequence[str] | None,
    predictions: Sequence[str],
    reference: Sequence[str],
    current: Sequence[str],
    exclude: str | None = None,
) -> list[str]:
    """The columns to compare: ``columns`` (default: every shared one but ``exclude``), then
    the prediction columns; each must be on both sides."""
    if isinstance(columns, str) or isinstance(predictions, str):
        raise InvalidInputError(
            "columns and predictions are lists of column names, not one string."
        )
    if columns is None:
        columns = [c for c in reference if c in current and c != exclude]
    names = list(dict.fromkeys([*columns, *predictions]))
    for name in names:
        for side, found in (("the reference", reference), ("the current data", current)):
            if name not in found:
                raise DataError(
                    f"Column '{name}' is not in {side}; its columns are: {', '.join(found)}."
                )
    if not names:
        raise DataError("The reference and the current data have no column in common.")
    return names


# ---------------------------------------------------------------------- helpers


def _as_array(values: Any, what: str) -> pa.ChunkedArray:
    try:
        array = values if isinstance(values, pa.ChunkedArray | pa.Array) else pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError) as exc:
        raise InvalidInputError(
            f"{what} must be a list or array of scores or labels: {exc}."
        ) from exc
    return array if isinstance(array, pa.ChunkedArray) else pa.chunked_array([array])


def _expanded(sample: NumericSample) -> np.ndarray:
    return sample.values if sample.counts is None else np.repeat(sample.values, sample.counts)


def _share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def _shares(counts: np.ndarray) -> tuple[float, ...]:
    total = counts.sum()
    return tuple((counts / total).tolist()) if total else tuple(0.0 for _ in counts)
