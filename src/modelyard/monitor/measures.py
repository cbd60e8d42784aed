"""What an alert rule's metric is worth now: each rule's metric over its own window.

    values = measure(project, "loans", spec.monitoring.alerts, now=now)  # {rule name: Measured}

The metrics a rule may name (``allowed_metrics``):

=====================  =================================================  ====================
metric                 value over ``[now − window, now)``                 samples
=====================  =================================================  ====================
``p99_latency_ms``     99th percentile of the logged requests' latency    logged requests
``throughput_rps``     requests per second (logged ÷ the log's sample     logged requests
                       rate, over the whole window)
``error_rate``         5xx ÷ answered requests, from the server's         answered requests
                       ``/metrics`` (``metrics_url``): this scrape's      in the window
                       counters minus those kept from one window ago
                       (``monitor.health.windowed_error_rate``)
``drift_share``        share of the features that drifted, against the    logged rows
                       model version's training baseline
``drift:<feature>``    that feature's PSI against the baseline            logged rows
``prediction_drift``   the PSI of the logged ``score`` against the        logged rows
                       training data's scores
a model metric         realised on labelled feedback                      labelled rows
(``roc_auc``, …)       (``monitor.performance``)
=====================  =================================================  ====================

The system metrics are ``monitor.health``'s (``HealthSummary.values()``).
Drift compares the rows logged by one model version (the newest in the
window, unless given) with that version's **training baseline**
(``monitor.training_baseline``): its training data scored by the version
itself, PII columns left out, fitted at registration and stored with the
version. PSI is used for single features because it reads the
same on every column (0.1 moderate, 0.25 large), where the deciding test of
``drift_share`` mixes p-values and distances.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc

from modelyard.errors import DataError, InvalidInputError
from modelyard.monitor.alerts import Measured
from modelyard.monitor.drift import DriftReport, detect_drift
from modelyard.monitor.health import HealthSummary, health_summary, windowed_error_rate
from modelyard.monitor.log_files import read_predictions
from modelyard.monitor.performance import NEEDS_ALL_PROBABILITIES, realised_metrics
from modelyard.monitor.training_baseline import SCORE, training_baseline
from modelyard.project import Project
from modelyard.spec import AlertRule, metrics_for, parse_duration
from modelyard.spec_catalogue import METRICS
from modelyard.spec_issues import SpecIssue, did_you_mean, spec_error

__all__ = [
    "DRIFT_METRICS",
    "SYSTEM_METRICS",
    "Measured",
    "allowed_metrics",
    "check_rules",
    "measure",
    "monitored_version",
]

SYSTEM_METRICS = ("error_rate", "p99_latency_ms", "throughput_rps")
DRIFT_METRICS = ("drift_share", "prediction_drift")
FEATURE_DRIFT = "drift:"


def allowed_metrics(task: str) -> list[str]:
    """The metric names a rule may use for ``task`` (``drift:<feature>`` as written)."""
    model = [m for m in metrics_for(task) if METRICS[m].kind == "model" and not METRICS[m].at_k]
    if task == "multiclass":  # the log keeps the top class's probability only
        model = [m for m in model if m not in NEEDS_ALL_PROBABILITIES]
    return [*SYSTEM_METRICS, *DRIFT_METRICS, f"{FEATURE_DRIFT}<feature>", *model]


def check_rules(project: Project, rules: Sequence[AlertRule]) -> None:
    """Raise ``SpecError`` naming every rule whose metric is unknown, and what is allowed."""
    allowed = allowed_metrics(project.spec.task)
    issues = [
        SpecIssue(
            str(project.spec_path),
            None,
            f"monitoring.alerts[{i}].metric",
            f"rule {rule.name!r}: unknown metric {rule.metric!r} for task "
            f"{project.spec.task!r}; use one of {', '.join(allowed)}."
            + did_you_mean(rule.metric, allowed),
        )
        for i, rule in enumerate(rules)
        if rule.metric not in allowed
        and not (rule.metric.startswith(FEATURE_DRIFT) and rule.metric[len(FEATURE_DRIFT) :])
    ]
    if issues:
        raise spec_error(str(project.spec_path), issues)


def measure(
    project: Project,
    model_name: str,
    rules: Sequence[AlertRule],
    *,
    now: datetime,
    metrics_url: str | None = None,
    version: int | None = None,
) -> dict[str, Measured]:
    """Each rule's metric over its window ending at ``now``, by rule name.

    ``version`` picks the model version whose logged rows drift is measured
    on (default: the newest version logged in the window).
    """
    check_rules(project, rules)
    scraped = [rule.name for rule in rules if rule.metric == "error_rate"]
    if scraped and metrics_url is None:
        raise InvalidInputError(
            f"Alert rule(s) {scraped} measure error_rate, which comes from the inference "
            "server's /metrics: give its address (--url http://host:port)."
        )
    window = _Windows(project, model_name, now, metrics_url, version)
    found: dict[tuple[str, int], Measured] = {}
    values = {}
    for rule in rules:
        key = (rule.metric, parse_duration(rule.window))
        if key not in found:
            found[key] = window.measure(*key)
        values[rule.name] = found[key]
    return values


def monitored_version(
    project: Project, model_name: str, since: datetime, until: datetime
) -> int | None:
    """The newest model version in the log between ``since`` and ``until`` (None: no rows)."""
    versions = read_predictions(project, model_name, since=since, until=until, columns=["version"])
    newest = pc.max(versions.column("version")).as_py() if versions.num_rows else None
    return None if newest is None else int(newest)


def _windowed_error_rate(
    project: Project, model: str, scrape: HealthSummary, seconds: int
) -> Measured:
    """5xx over the requests answered in the window, from this scrape and a kept earlier one.

    The kept scrapes reach back as far as the spec's longest error_rate window.
    """
    rules = project.spec.monitoring.alerts
    windows = [parse_duration(r.window) for r in rules if r.metric == "error_rate"]
    longest = max(windows, default=seconds)
    found = windowed_error_rate(project, model, scrape, seconds, keep_seconds=longest)
    return Measured(found.error_rate, found.requests, found.span_seconds)


class _Windows:
    """Measures metrics over windows ending at ``now``, reading each window once."""

    def __init__(
        self,
        project: Project,
        model: str,
        now: datetime,
        metrics_url: str | None,
        version: int | None,
    ) -> None:
        self.project, self.model, self.now = project, model, now
        self.metrics_url, self.version = metrics_url, version
        self._logs: dict[int, pa.Table] = {}
        self._health: dict[int, HealthSummary] = {}
        self._scrape: HealthSummary | None = None  # /metrics, read once a run
        self._drift: dict[int, tuple[DriftReport, int] | None] = {}

    def measure(self, metric: str, seconds: int) -> Measured:
        if metric in SYSTEM_METRICS:
            return self._system(metric, seconds)
        if metric in DRIFT_METRICS or metric.startswith(FEATURE_DRIFT):
            return self._drifted(metric, seconds)
        return self._realised(metric, seconds)

    def log(self, seconds: int) -> pa.Table:
        if seconds not in self._logs:
            since = self.now - timedelta(seconds=seconds)
            self._logs[seconds] = read_predictions(
                self.project, self.model, since=since, until=self.now
            )
        return self._logs[seconds]

    def _system(self, metric: str, seconds: int) -> Measured:
        if metric == "error_rate":  # the server's counters, whatever the window: one scrape
            if self._scrape is None:
                self._scrape = health_summary(
                    self.project,
                    self.model,
                    window=f"{seconds}s",
                    metrics_url=self.metrics_url,
                    now=self.now,
                )
            return _windowed_error_rate(self.project, self.model, self._scrape, seconds)
        if seconds not in self._health:
            self._health[seconds] = health_summary(
                self.project, self.model, window=f"{seconds}s", now=self.now
            )
        health = self._health[seconds]
        return Measured(health.values()[metric], health.requests)

    def _realised(self, metric: str, seconds: int) -> Measured:
        found = realised_metrics(
            self.project,
            self.model,
            window=f"{seconds}s",
            since=self.now - timedelta(seconds=seconds),
            until=self.now,
            metrics=[metric],
        )
        labelled = found.overall.labelled - found.invalid_labels
        return Measured(found.overall.metrics.get(metric), labelled)

    def _drifted(self, metric: str, seconds: int) -> Measured:
        found = self._report(seconds)
        if found is None:
            return Measured(None, 0)
        report, rows = found
        if metric == "drift_share":
            return Measured(report.drift_share, rows)
        name = SCORE if metric == "prediction_drift" else metric[len(FEATURE_DRIFT) :]
        compared = [f.feature for f in report.features]
        if name not in compared:
            features = [c for c in compared if c != SCORE]
            raise DataError(
                f"Alert metric {metric!r}: the drift of model '{self.model}' compares "
                f"{features}, not {name!r}. Name one of those in the rule "
                "(drift:<feature>), or drop the rule."
            )
        return Measured(report.feature(name).statistics.get("psi"), rows)

    def _report(self, seconds: int) -> tuple[DriftReport, int] | None:
        if seconds in self._drift:
            return self._drift[seconds]
        log = self.log(seconds)
        version = self.version
        if version is None and log.num_rows:
            version = int(pc.max(log.column("version")).as_py())
        found = None
        if version is not None:
            rows = log.filter(pc.equal(log.column("version"), version))
            if rows.num_rows:
                found = (self._compare(version, rows), rows.num_rows)
        self._drift[seconds] = found
        return found

    def _compare(self, version: int, rows: pa.Table) -> DriftReport:
        baseline = training_baseline(self.project, self.model, version)
        features = [c for c in baseline.names if c != SCORE and c in rows.column_names]
        return detect_drift(
            baseline,
            rows,
            features,
            predictions=[SCORE],
            thresholds=self.project.spec.drift,
            reference_name=f"{self.model}@{version} training data",
            current_name=f"{self.model}@{version} predictions",
            workers=1,
        )
