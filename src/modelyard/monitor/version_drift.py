"""Drift of one model version's logged rows, for the monitoring report.

    found = VersionComparison(project, "loans", 3, rows, 86_400, baseline).measure()

The features against the version's training baseline, over the whole window and per
sub-window of ``step_seconds``; the logged scores against the training data's scores, or,
when the baseline has none (or there is no baseline), against those of the first
sub-window (``VersionDrift.reference`` says which). PII columns are left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

import pyarrow as pa
import pyarrow.compute as pc

from modelyard.monitor.baseline import fit_baseline
from modelyard.monitor.drift import DriftReport, FeatureDrift, detect_drift, prediction_drift
from modelyard.monitor.training_baseline import SCORE
from modelyard.monitor.windows import WindowDrift, drift_over_windows

if TYPE_CHECKING:
    from modelyard.monitor.baseline import Baseline
    from modelyard.project import Project

PredictionReference = Literal["training", "first_window"]


@dataclass(frozen=True)
class VersionDrift:
    """What ``VersionComparison.measure`` found, and notes on what it could not measure."""

    overall: DriftReport | None
    prediction: FeatureDrift | None
    reference: PredictionReference
    reference_label: str
    windows: tuple[WindowDrift, ...]
    notes: tuple[str, ...]


class VersionComparison:
    """Drift of one version's logged rows (``rows``) against its training ``baseline``; the
    scores against the first sub-window's when the baseline has none (or there is none)."""

    def __init__(
        self,
        project: Project,
        model: str,
        version: int,
        rows: pa.Table,
        step_seconds: int,
        baseline: Baseline | None,
    ) -> None:
        self.project, self.baseline = project, baseline
        self.rows, self.step, self.step_ms = rows, f"{step_seconds}s", step_seconds * 1000
        self.thresholds = project.spec.drift
        self.ref = f"{model}@{version}"

    def measure(self) -> VersionDrift:
        baseline = self.baseline
        features = self._features(baseline) if baseline is not None else []
        training = f"{self.ref} training data"
        if baseline is not None and SCORE in baseline.names:
            overall = self._detect(baseline, features, [SCORE])
            label = f"the scores of {self.ref} on its training data"
            windows = self._windows(baseline, features, [SCORE], training)
            return VersionDrift(overall, overall.feature(SCORE), "training", label, windows, ())
        first, later, label = self._split_first()
        scores = self._windows(fit_baseline(first, [SCORE]), [], [SCORE], "first sub-window")
        prediction: FeatureDrift | None = None
        notes: tuple[str, ...] = ()
        if later.num_rows:
            prediction = prediction_drift(
                first.column(SCORE), later.column(SCORE), thresholds=self.thresholds, name=SCORE
            )
        else:
            notes = ("Prediction drift is not measured: every prediction is in one sub-window.",)
        if baseline is None or not features:
            return VersionDrift(None, prediction, "first_window", label, scores, notes)
        overall = self._detect(baseline, features, [])
        windows = _merged(self._windows(baseline, features, [], training), scores)
        return VersionDrift(overall, prediction, "first_window", label, windows, notes)

    def _features(self, baseline: Baseline) -> list[str]:
        """The baseline's features the log holds, PII left out (the log keeps it hashed)."""
        pii, logged = set(self.project.spec.columns.pii), set(self.rows.column_names)
        return [c for c in baseline.names if c != SCORE and c in logged and c not in pii]

    def _detect(
        self, baseline: Baseline, features: list[str], predictions: list[str]
    ) -> DriftReport:
        return detect_drift(
            baseline,
            self.rows,
            features,
            predictions=predictions,
            thresholds=self.thresholds,
            reference_name=f"{self.ref} training data",
            current_name=f"{self.ref} predictions",
        )

    def _windows(
        self, baseline: Baseline, columns: list[str], predictions: list[str], name: str
    ) -> tuple[WindowDrift, ...]:
        found = drift_over_windows(
            baseline,
            self.rows,
            "ts",
            columns,
            window=self.step,
            predictions=predictions,
            thresholds=self.thresholds,
            reference_name=name,
        )
        return tuple(found)

    def _split_first(self) -> tuple[pa.Table, pa.Table, str]:
        """The rows of the first sub-window, the later rows, and how to name the first."""
        ms = pc.cast(self.rows.column("ts"), pa.int64())
        begin = pc.min(ms).as_py() // self.step_ms * self.step_ms
        early = pc.less(ms, begin + self.step_ms)
        span = f"{_moment(begin):%Y-%m-%d %H:%M}–{_moment(begin + self.step_ms):%Y-%m-%d %H:%M}"
        label = f"the scores of the first sub-window ({span} UTC)"
        return self.rows.filter(early), self.rows.filter(pc.invert(early)), label


def _merged(
    features: tuple[WindowDrift, ...], scores: tuple[WindowDrift, ...]
) -> tuple[WindowDrift, ...]:
    """Feature windows with the score column of the same sub-window added."""
    by_start = {w.start: w.report.features for w in scores}
    merged = []
    for w in features:
        r = w.report
        columns = (*r.features, *by_start.get(w.start, ()))
        report = DriftReport(r.reference, r.current, r.rows, columns, r.thresholds, r.skipped)
        merged.append(WindowDrift(w.start, w.end, report))
    return tuple(merged)


def _moment(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)
