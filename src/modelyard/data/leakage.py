"""Leakage checks: does anything let the validation and test rows be known from training?

``check_split(frame, spec, split, options)`` runs every check and returns a
``LeakageReport``: a list of ``Finding(check, severity, message, details)``,
the checks it ran and skipped (with why), and each feature's own target score.
``report.passed`` is False when any finding is an error. The checks:

- ``id_overlap``      an id (``columns.id``, else a row position) in two parts.
- ``group_overlap``   a group (``columns.group``) with rows in two parts.
- ``row_overlap``     a validation or test row identical, features and target,
  to a training row (or a test row to a validation row): rows hashed with
  ``pandas.util.hash_pandas_object``, every row compared.
- ``near_duplicate``  a validation or test row whose every numeric feature is
  within ``tolerance`` (0.01) training standard deviations of one training
  row's (missing only matches missing) *and* whose text features equal that
  row's once case-folded and stripped. Numbers whose distinct values lie further
  apart than the tolerance (counts, flags) are simply compared for equality,
  together with the text, by hash; the rest by a KD-tree radius query
  (Chebyshev distance) on at most ``near_duplicate_reference`` training rows
  and ``near_duplicate_queries`` validation/test rows, sampled when there are
  more (the message says so). Exact copies are left to ``row_overlap``.
- ``target_leakage``  a feature that alone predicts the target too well: the
  out-of-fold score of a shallow decision tree (depth 6) on that one feature
  (text features target-encoded inside each fold), 3-fold, on at most
  ``target_sample`` training rows: ROC-AUC for binary, one-vs-rest macro
  ROC-AUC for multiclass, R² for regression and ranking. Flagged at
  ``max_auc`` (0.95) or ``max_r2`` (0.9).
- ``time_leakage``    validation or test rows older than the newest training row,
  or test rows older than the newest validation row: counted, with the worst
  gap. An error for a ``time`` split; a warning for a split that did not
  promise time order (random, stratified, grouped), where it is the choice
  made, but still means the model is scored on its own past.
- ``constant_feature`` / ``empty_feature`` (warnings) features with one value,
  or with no value at all.

Overlaps are errors when they touch more than ``overlap_error_share`` of the
later part's rows (default 0: any), warnings otherwise — data with few
discrete features has natural identical rows; raise the share for such data.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from modelyard.data.splits import CLASSIFICATION, Split, SplitPositions, time_values
from modelyard.errors import DataError
from modelyard.spec import Spec

__all__ = ["CHECKS", "Finding", "LeakageOptions", "LeakageReport", "check_split"]

Severity = Literal["error", "warning"]
Rows = npt.NDArray[np.int64]
CHECKS = (
    "id_overlap",
    "group_overlap",
    "row_overlap",
    "near_duplicate",
    "target_leakage",
    "time_leakage",
    "constant_feature",
)
MISSING_Z = 1e9  # where a missing number sits after standardising: far from every real value
PAIRS = (("train", "validation"), ("train", "test"), ("validation", "test"))


@dataclass(frozen=True)
class LeakageOptions:
    """Thresholds and sample caps of ``check_split``."""

    max_auc: float = 0.95
    max_r2: float = 0.9
    target_sample: int = 20_000
    folds: int = 3
    tolerance: float = 0.01
    near_duplicate_reference: int = 200_000
    near_duplicate_queries: int = 50_000
    overlap_error_share: float = 0.0
    examples: int = 5


@dataclass(frozen=True)
class Finding:
    """One problem: which check found it, how bad it is, what to do, and the numbers."""

    check: str
    severity: Severity
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "severity": self.severity,
            "message": self.message,
            "details": self.details,
        }


@dataclass
class LeakageReport:
    """What ``check_split`` found; ``passed`` when no finding is an error."""

    findings: list[Finding] = field(default_factory=list)
    ran: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    target_metric: str | None = None
    target_scores: dict[str, float] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not self.errors

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    def by_check(self, check: str) -> list[Finding]:
        return [f for f in self.findings if f.check == check]

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "findings": [f.to_dict() for f in self.findings],
            "ran": list(self.ran),
            "skipped": dict(self.skipped),
            "target_metric": self.target_metric,
            "target_scores": dict(self.target_scores),
        }


@dataclass
class _Context:
    """What every check reads: the data, the spec, the split's row positions."""

    frame: pd.DataFrame
    spec: Spec
    split: Split
    parts: SplitPositions
    features: list[str]
    options: LeakageOptions
    report: LeakageReport

    @cached_property
    def row_hashes(self) -> npt.NDArray[np.uint64]:
        """One 64-bit hash per row of its features and target."""
        columns = [*self.features, self.spec.target]
        hashes: npt.NDArray[np.uint64] = pd.util.hash_pandas_object(
            self.frame[columns], index=False
        ).to_numpy()
        return hashes

    def rows(self, name: str) -> Rows:
        rows: Rows = getattr(self.parts, name)
        return rows

    def label(self, positions: npt.NDArray[np.integer[Any]]) -> list[Any]:
        """How rows are named in messages: their id if the data has one, else positions."""
        column = self.spec.columns.id
        if column is not None and column in self.frame.columns:
            return [_plain(v) for v in self.frame[column].to_numpy()[positions]]
        return [int(p) for p in positions]

    def add(self, check: str, severity: Severity, message: str, **details: Any) -> None:
        self.report.findings.append(Finding(check, severity, message, details))

    def overlap_severity(self, count: int, rows: int) -> Severity:
        share = count / rows if rows else 0.0
        return "error" if share > self.options.overlap_error_share else "warning"


def check_split(
    frame: pd.DataFrame,
    spec: Spec,
    split: Split,
    options: LeakageOptions | None = None,
) -> LeakageReport:
    """Run every leakage check on ``split`` of ``frame``; see the module docstring."""
    if spec.target not in frame.columns:
        raise DataError(
            f"Target column '{spec.target}' (from the spec) is not in the data; "
            f"columns are {list(frame.columns)}."
        )
    features = spec.feature_columns(list(frame.columns))
    absent = [c for c in features if c not in frame.columns]
    if absent:
        raise DataError(
            f"Feature columns {absent} (columns.features in the spec) are not in the data."
        )
    report = LeakageReport()
    ctx = _Context(
        frame, spec, split, split.positions(frame), features, options or LeakageOptions(), report
    )
    checks: dict[str, Callable[[_Context], str | None]] = {
        "id_overlap": _id_overlap,
        "group_overlap": _group_overlap,
        "row_overlap": _row_overlap,
        "near_duplicate": _near_duplicates,
        "target_leakage": _target_leakage,
        "time_leakage": _time_leakage,
        "constant_feature": _useless_features,
    }
    for name, check in checks.items():
        skipped = check(ctx)
        if skipped is None:
            report.ran.append(name)
        else:
            report.skipped[name] = skipped
    return report


# --------------------------------------------------------------------------- overlaps


def _id_overlap(ctx: _Context) -> str | None:
    column = ctx.spec.columns.id
    has_ids = column is not None and column in ctx.frame.columns
    for first, second in PAIRS:
        a, b = ctx.rows(first), ctx.rows(second)
        if has_ids:
            values = ctx.frame[column]
            shared = pd.Index(values.iloc[a].unique()).intersection(values.iloc[b].unique())
            rows = int(values.iloc[b].isin(shared).sum())
        else:
            shared = pd.Index(np.intersect1d(a, b))
            rows = len(shared)
        if len(shared):
            what = f"ids ('{column}')" if has_ids else "row positions"
            ctx.add(
                "id_overlap",
                "error",
                f"{what.capitalize()} in both {first} and {second}: {len(shared):,}, e.g. "
                f"{[_plain(v) for v in shared[: ctx.options.examples]]}. The same rows are "
                "trained on and scored; remove duplicate ids, then split again.",
                parts=[first, second],
                count=len(shared),
                rows=rows,
                examples=[_plain(v) for v in shared[: ctx.options.examples]],
            )
    return None


def _group_overlap(ctx: _Context) -> str | None:
    column = ctx.spec.columns.group
    if column is None:
        return "the spec names no columns.group"
    if column not in ctx.frame.columns:
        return f"group column '{column}' is not in the data"
    groups = ctx.frame[column]
    for first, second in PAIRS:
        later = groups.iloc[ctx.rows(second)]
        shared = pd.Index(groups.iloc[ctx.rows(first)].dropna().unique()).intersection(
            later.dropna().unique()
        )
        if len(shared) == 0:
            continue
        rows = int(later.isin(shared).sum())
        examples = [_plain(v) for v in shared[: ctx.options.examples]]
        ctx.add(
            "group_overlap",
            ctx.overlap_severity(rows, len(later)),
            f"Groups of '{column}' with rows in both {first} and {second}: {len(shared):,} "
            f"({rows:,} {second} rows), e.g. {examples}. The model is scored on groups it has "
            "seen; use the grouped split (--split grouped).",
            parts=[first, second],
            groups=len(shared),
            rows=rows,
            examples=examples,
        )
    return None


def _row_overlap(ctx: _Context) -> str | None:
    hashes = ctx.row_hashes
    for first, second in PAIRS:
        earlier, later = ctx.rows(first), ctx.rows(second)
        twins = pd.Series(earlier, index=hashes[earlier])
        twins = twins[~twins.index.duplicated()]
        hit = later[np.isin(hashes[later], twins.index.to_numpy())]
        if len(hit) == 0:
            continue
        shown = hit[: ctx.options.examples]
        pairs = list(
            zip(ctx.label(shown), ctx.label(twins.loc[hashes[shown]].to_numpy()), strict=True)
        )
        ctx.add(
            "row_overlap",
            ctx.overlap_severity(len(hit), len(later)),
            f"{second.capitalize()} rows that exactly copy a {first} row (features and "
            f"target): {len(hit):,} ({len(hit) / len(later):.2%}), e.g. {second} {pairs[0][0]} "
            f"= {first} {pairs[0][1]}. Drop duplicate rows before splitting, or split by "
            "entity (columns.group).",
            parts=[first, second],
            rows=len(hit),
            share=len(hit) / len(later),
            examples=[{second: a, first: b} for a, b in pairs],
        )
    return None


# --------------------------------------------------------------------------- near-duplicates


def _near_duplicates(ctx: _Context) -> str | None:
    if not ctx.features:
        return "there are no feature columns"
    rng = np.random.default_rng(ctx.split.seed)
    options = ctx.options
    reference = _sample(rng, ctx.rows("train"), options.near_duplicate_reference)
    later = np.concatenate([ctx.rows("validation"), ctx.rows("test")])
    queries = _sample(rng, later, options.near_duplicate_queries)
    if len(reference) == 0 or len(queries) == 0:
        return "the split has no training rows, or no validation and test rows"
    keys, points = _near_duplicate_space(ctx, np.concatenate([reference, queries]), len(reference))
    nearest = _nearest_within(keys, points, len(reference), options.tolerance)
    found = (nearest >= 0) & ~np.isin(ctx.row_hashes[queries], ctx.row_hashes[ctx.rows("train")])
    if not found.any():
        return None
    hits = np.flatnonzero(found)
    shown = hits[: options.examples]
    pairs = list(zip(ctx.label(queries[shown]), ctx.label(reference[nearest[shown]]), strict=True))
    sampled = len(reference) < len(ctx.rows("train")) or len(queries) < len(later)
    scope = f" in a sample of {len(queries):,}" if sampled else ""
    ctx.add(
        "near_duplicate",
        ctx.overlap_severity(len(hits), len(queries)),
        f"Validation/test rows that nearly copy a training row: {len(hits):,}{scope}, e.g. "
        f"row {pairs[0][0]} ≈ training row {pairs[0][1]} (every number within "
        f"{options.tolerance:g} standard deviations, text equal up to case and spaces). They "
        "are probably the same records; drop duplicates before splitting, or split by entity.",
        rows=len(hits),
        share=len(hits) / len(queries),
        checked_rows=len(queries),
        reference_rows=len(reference),
        tolerance=options.tolerance,
        examples=[{"row": a, "train": b} for a, b in pairs],
    )
    return None


def _near_duplicate_space(
    ctx: _Context, rows: Rows, n_reference: int
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.float64] | None]:
    """Each row as a key (what must be equal) and a point (what must be close).

    Numbers are standardised by the reference rows' mean and standard deviation (1
    when that is 0). The key holds the text, case-folded and stripped, and every
    number whose distinct values lie further apart than the tolerance — for those,
    "within the tolerance" means "equal", and a tree would only trip over the ties.
    The point holds the other numbers; a missing one sits at ``MISSING_Z``, so it is
    only close to another missing one. ``points`` is None when every feature is keyed.
    """
    data = ctx.frame[ctx.features].iloc[rows].reset_index(drop=True)
    keyed: dict[str, Any] = {}
    axes = []
    for column in ctx.features:
        values = _as_number(data[column])
        if values is None:
            keyed[column] = data[column].astype("string").str.casefold().str.strip()
            continue
        z = _standardised(values, n_reference)
        distinct = np.unique(z[~np.isnan(z)])
        if len(distinct) < 2 or np.diff(distinct).min() > ctx.options.tolerance:
            keyed[column] = z
        else:
            axes.append(np.where(np.isnan(z), MISSING_Z, np.clip(z, -1e6, 1e6)))
    keys = np.zeros(len(rows), dtype=np.intp)
    if keyed:
        hashed = pd.util.hash_pandas_object(pd.DataFrame(keyed), index=False)
        keys = pd.factorize(hashed)[0]
    return keys, np.column_stack(axes) if axes else None


def _standardised(values: npt.NDArray[np.float64], n_reference: int) -> npt.NDArray[np.float64]:
    fit = values[:n_reference]
    if not np.isfinite(fit).any():
        return values
    scale = float(np.nanstd(fit))
    z: npt.NDArray[np.float64] = (values - float(np.nanmean(fit))) / (scale if scale > 0 else 1.0)
    return z


def _nearest_within(
    keys: npt.NDArray[np.intp],
    points: npt.NDArray[np.float64] | None,
    n_reference: int,
    tolerance: float,
) -> npt.NDArray[np.int64]:
    """For each query (the rows after ``n_reference``), the index of a reference row with
    the same key and a point within ``tolerance`` (Chebyshev), or -1."""
    from sklearn.neighbors import KDTree

    if points is None:
        first = pd.Series(np.arange(n_reference), index=keys[:n_reference])
        first = first[~first.index.duplicated()]
        found: npt.NDArray[np.int64] = (
            first.reindex(keys[n_reference:]).fillna(-1).to_numpy(np.int64)
        )
        return found
    # The key becomes one more axis, spaced wider than the tolerance.
    space = np.column_stack([points, keys * (10.0 * tolerance + 1.0)])
    tree = KDTree(space[:n_reference], metric="chebyshev")
    queries = space[n_reference:]
    near = tree.query_radius(queries, r=tolerance, count_only=True) > 0
    nearest = np.full(len(queries), -1, dtype=np.int64)
    if near.any():
        nearest[near] = tree.query(queries[near], k=1)[1][:, 0]
    return nearest


# --------------------------------------------------------------------------- target leakage


def _target_leakage(ctx: _Context) -> str | None:
    classify = ctx.spec.task in CLASSIFICATION
    scored = _scoring_rows(ctx, classify)
    if isinstance(scored, str):
        return scored
    rows, y = scored
    metric = "roc_auc" if classify else "r2"
    ctx.report.target_metric = metric
    limit = ctx.options.max_auc if classify else ctx.options.max_r2
    for column in ctx.features:
        score = _single_feature_score(ctx.frame[column].iloc[rows], y, classify, ctx)
        if score is None:
            continue
        ctx.report.target_scores[column] = score
        if score >= limit:
            name = "ROC-AUC" if classify else "R²"
            ctx.add(
                "target_leakage",
                "error",
                f"Feature '{column}' alone predicts '{ctx.spec.target}' with cross-validated "
                f"{name} {score:.3f} (limit {limit:g}): it probably encodes the target or is "
                "recorded after the outcome. Remove it, or add it to columns.exclude.",
                feature=column,
                metric=metric,
                value=score,
                threshold=limit,
                rows=len(rows),
            )
    return None


def _scoring_rows(ctx: _Context, classify: bool) -> tuple[Rows, npt.NDArray[Any]] | str:
    """A sample of labelled training rows and their target (class codes, or numbers).

    Classes with fewer rows than folds cannot be in every fold, so they are left out.
    """
    folds, name = ctx.options.folds, ctx.spec.target
    rng = np.random.default_rng(ctx.split.seed)
    rows = _sample(rng, ctx.rows("train"), ctx.options.target_sample)
    target = ctx.frame[name].iloc[rows]
    rows, target = rows[target.notna().to_numpy()], target.dropna()
    if not classify:
        y = _as_number(target)
        if y is None:
            return f"target '{name}' is not numeric, so R² cannot be computed"
        return (rows, y) if len(rows) >= 2 * folds else f"fewer than {2 * folds} labelled rows"
    codes = pd.factorize(target)[0].astype(np.int64)
    keep = (np.bincount(codes) >= folds)[codes]
    if len(np.unique(codes[keep])) < 2:
        return f"target '{name}' has fewer than two classes with {folds} or more training rows"
    return rows[keep], codes[keep]


def _single_feature_score(
    values: pd.Series, y: npt.NDArray[Any], classify: bool, ctx: _Context
) -> float | None:
    from sklearn.metrics import r2_score, roc_auc_score
    from sklearn.model_selection import KFold, StratifiedKFold, cross_val_predict

    if values.nunique(dropna=False) < 2:
        return None
    model, x = _single_feature_model(values, y, classify, ctx)
    seed = ctx.split.seed
    cv = (StratifiedKFold if classify else KFold)(
        ctx.options.folds, shuffle=True, random_state=seed
    )
    if not classify:
        return float(r2_score(y, cross_val_predict(model, x, y, cv=cv)))
    proba = cross_val_predict(model, x, y, cv=cv, method="predict_proba")
    if proba.shape[1] == 2:
        return float(roc_auc_score(y, proba[:, 1]))
    return float(roc_auc_score(y, proba, multi_class="ovr", average="macro"))


def _single_feature_model(
    values: pd.Series, y: npt.NDArray[Any], classify: bool, ctx: _Context
) -> tuple[Any, npt.NDArray[Any]]:
    """A shallow tree on the number, or on the target-encoded text (encoded per fold)."""
    from sklearn.pipeline import make_pipeline
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    leaf = max(10, len(values) // 500)
    seed = ctx.split.seed
    tree = (DecisionTreeClassifier if classify else DecisionTreeRegressor)(
        max_depth=6, min_samples_leaf=leaf, random_state=seed
    )
    number = _as_number(values)
    if number is not None:
        return tree, number.reshape(-1, 1)
    text = pd.factorize(values)[0].reshape(-1, 1)  # codes sort fast; missing is code -1
    kind = "continuous" if not classify else "binary" if len(np.unique(y)) == 2 else "multiclass"
    return make_pipeline(_target_encoder(kind, ctx.options.folds, seed), tree), text


def _target_encoder(kind: str, folds: int, seed: int) -> Any:
    """A seeded ``TargetEncoder``: scikit-learn 1.9 takes a splitter, older ones a seed."""
    from sklearn.model_selection import KFold, StratifiedKFold
    from sklearn.preprocessing import TargetEncoder

    if TargetEncoder().get_params().get("random_state") != "deprecated":
        return TargetEncoder(target_type=kind, cv=folds, shuffle=True, random_state=seed)
    splitter = StratifiedKFold if kind != "continuous" else KFold
    return TargetEncoder(target_type=kind, cv=splitter(folds, shuffle=True, random_state=seed))


# --------------------------------------------------------------------------- time, useless


def _time_leakage(ctx: _Context) -> str | None:
    column = ctx.spec.columns.time
    if column is None:
        return "the spec names no columns.time"
    if column not in ctx.frame.columns:
        return f"time column '{column}' is not in the data"
    times = time_values(ctx.frame, column)
    severity: Severity = "error" if ctx.split.method == "time" else "warning"
    hint = (
        "The time split should never do this: check the time column."
        if severity == "error"
        else "The model is scored on rows older than some it learned from; if it will "
        "predict the future, use --split time."
    )
    for first, second in PAIRS:
        newest = times.iloc[ctx.rows(first)].max()
        later = times.iloc[ctx.rows(second)]
        if pd.isna(newest) or not (older := later < newest).any():
            continue
        gap = newest - later.min()
        ctx.add(
            "time_leakage",
            severity,
            f"{second.capitalize()} rows older than the newest {first} row ({newest}): "
            f"{int(older.sum()):,} ({older.mean():.1%}), the oldest by {gap}. {hint}",
            parts=[first, second],
            rows=int(older.sum()),
            share=float(older.mean()),
            newest=str(newest),
            worst_gap=str(gap),
        )
    return None


def _useless_features(ctx: _Context) -> str | None:
    if not ctx.features:
        return "there are no feature columns"
    data = ctx.frame[ctx.features]
    distinct = data.nunique(dropna=True)
    empty = [c for c in ctx.features if distinct[c] == 0]
    constant = [c for c in ctx.features if distinct[c] == 1]
    if empty:
        ctx.add(
            "empty_feature",
            "warning",
            f"Features without any value: {_listed(empty)}. They cannot help a model; add "
            "them to columns.exclude or fix the data source.",
            columns=empty,
        )
    if constant:
        ctx.add(
            "constant_feature",
            "warning",
            f"Features with a single value: {_listed(constant)}. They cannot help a model; "
            "add them to columns.exclude or fix the data source.",
            columns=constant,
        )
    return None


# --------------------------------------------------------------------------- helpers


def _sample(rng: np.random.Generator, rows: Rows, cap: int) -> Rows:
    if len(rows) <= cap:
        return rows
    return np.sort(rng.choice(rows, size=cap, replace=False))


def _as_number(values: pd.Series) -> npt.NDArray[np.float64] | None:
    """Float64 with NaN for missing, for numbers, booleans and datetimes; None for text."""
    if pd.api.types.is_datetime64_any_dtype(values):
        values = (values - pd.Timestamp(0, tz=values.dt.tz)) / pd.Timedelta(1, "s")
    elif pd.api.types.is_timedelta64_dtype(values):
        values = values / pd.Timedelta(1, "s")
    elif not (pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values)):
        return None
    number: npt.NDArray[np.float64] = values.astype("Float64").to_numpy(np.float64, na_value=np.nan)
    return number


def _plain(value: Any) -> Any:
    """A value as JSON can hold it (numpy scalars to Python, others to text)."""
    if isinstance(value, np.generic):
        value = value.item()
    return value if isinstance(value, str | int | float | bool) or value is None else str(value)


def _listed(columns: list[str], limit: int = 8) -> str:
    shown = ", ".join(f"'{c}'" for c in itertools.islice(columns, limit))
    return shown + (f" and {len(columns) - limit} more" if len(columns) > limit else "")
