"""``modelyard monitor run``: measure, evaluate the alert rules, notify on-call, keep the history.

    result = run_once(project, "loans")                # one evaluation of every rule
    run_forever(project, "loans", interval_seconds=60, on_result=print)   # until SIGINT/SIGTERM
    alert_history(project, "loans", include_closed=True)

One evaluation is: ``measures.measure`` each rule's metric over its window →
``alerts.evaluate_rules`` against the state kept in the store →
``notify.escalate`` each firing and recovery to the channels on call for its
severity → one write transaction that updates the ``alerts`` table and
appends an audit event (``alert.firing`` / ``alert.resolved``) per
notification. The engine's state is read back from that table, so a
restarted monitor keeps de-duplicating and honours the cool-down.

Each run also applies ``monitoring.log.retention`` to the model's prediction
and feedback logs, judged at the run's time: the server prunes them only when
a worker starts, and a server can run for weeks. ``RunResult.removed_files``
counts the files deleted.

An ``alerts`` row is one episode of a rule: it opens when the rule fires
(state ``firing``, later ``resolved``) or is suppressed by the cool-down
(``suppressed``), and is open while ``resolved_at`` is null. Its
``notifications`` list every delivery: event, channel, ok, error, time.
Run one monitor per model: two monitors of the same model would each notify.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from modelyard.errors import DataError, InvalidInputError, ModelyardError
from modelyard.monitor.alerts import RuleState, Status, Transition, evaluate_rules
from modelyard.monitor.log_files import apply_retention, feedback_root, predictions_root
from modelyard.monitor.measures import check_rules, measure, monitored_version
from modelyard.monitor.notify import Delivery, Notification, Sender, escalate
from modelyard.monitor.stats import finite_or_none
from modelyard.project import Project
from modelyard.registry.audit import record
from modelyard.spec import AlertRule, parse_duration
from modelyard.store import tables, utcnow

__all__ = [
    "AlertRecord",
    "Evaluation",
    "RunResult",
    "alert_history",
    "load_state",
    "run_forever",
    "run_once",
]


@dataclass(frozen=True)
class Evaluation:
    """One rule in one run: its transition, and who was told (firing or resolved only)."""

    transition: Transition
    deliveries: tuple[Delivery, ...] = ()


@dataclass(frozen=True)
class RunResult:
    """What one ``run_once`` measured, decided and sent, and the log files the retention removed."""

    model: str
    version: int | None
    at: datetime
    evaluations: tuple[Evaluation, ...]
    removed_files: int = 0

    @property
    def notified(self) -> list[Evaluation]:
        return [e for e in self.evaluations if e.transition.notifies]

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "at": self.at.isoformat(),
            "removed_files": self.removed_files,
            "evaluations": [_evaluation_dict(e) for e in self.evaluations],
        }


@dataclass(frozen=True)
class AlertRecord:
    """One row of the alert history."""

    id: str
    model: str
    version: int | None
    rule: str
    metric: str
    severity: str
    state: str
    value: float | None
    threshold: float
    direction: str
    window_seconds: int
    started_at: datetime
    resolved_at: datetime | None
    last_evaluated_at: datetime
    notifications: list[dict[str, Any]]


def run_once(
    project: Project,
    model: str,
    *,
    now: datetime | None = None,
    metrics_url: str | None = None,
    sender: Sender | None = None,
    report_url: str | None = None,
    actor: str = "monitor",
) -> RunResult:
    """Evaluate every alert rule of the spec on ``model`` once, then apply the log retention
    (see the module docstring)."""
    at = now or utcnow()
    rules = project.spec.monitoring.alerts
    _check(project, model, rules)
    version: int | None = None
    evaluations: tuple[Evaluation, ...] = ()
    if rules:
        version, evaluations = _evaluate(project, model, rules, at, metrics_url, sender, report_url)
        _persist(project, model, version, evaluations, at, actor)
    return RunResult(model, version, at, evaluations, _apply_retention(project, model, at))


def run_forever(
    project: Project,
    model: str,
    interval_seconds: float,
    *,
    metrics_url: str | None = None,
    sender: Sender | None = None,
    on_result: Callable[[RunResult], None] | None = None,
    on_error: Callable[[ModelyardError], None] | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Run every ``interval_seconds`` until ``stop`` is set or SIGINT/SIGTERM; returns the runs.

    The first run's errors are raised (a wrong model name, an unknown metric);
    later ones go to ``on_error`` and the loop goes on (a server down for a
    minute must not end the monitor).
    """
    if interval_seconds <= 0:
        raise InvalidInputError(f"The interval must be positive; got {interval_seconds} s.")
    stopping = stop or threading.Event()
    runs = 0
    with _stop_on_signals(stopping):
        while not stopping.is_set():
            started = time.monotonic()
            try:
                result = run_once(project, model, metrics_url=metrics_url, sender=sender)
            except ModelyardError as exc:
                if runs == 0 or on_error is None:
                    raise
                on_error(exc)
            else:
                if on_result is not None:
                    on_result(result)
            runs += 1
            stopping.wait(max(0.0, started + interval_seconds - time.monotonic()))
    return runs


def load_state(project: Project, model: str) -> dict[str, RuleState]:
    """Each rule's state from the alert history: its open episode and when it last fired."""
    a = tables.Alert
    mine = (a.project_id == project.id, a.model == model)
    with project.db.read() as session:
        fired = dict(
            session.execute(
                sa.select(a.rule, sa.func.max(a.started_at))
                .where(*mine, a.state.in_(("firing", "resolved")))
                .group_by(a.rule)
            ).all()
        )
        open_rows = session.scalars(sa.select(a).where(*mine, a.resolved_at.is_(None))).all()
        state = {rule: RuleState("ok", None, at) for rule, at in fired.items()}
        for row in open_rows:
            status: Status = "firing" if row.state == "firing" else "suppressed"
            state[row.rule] = RuleState(status, row.started_at, fired.get(row.rule))
        return state


def alert_history(
    project: Project, model: str, *, include_closed: bool = False, limit: int | None = None
) -> list[AlertRecord]:
    """The alerts of ``model``, newest first: the open ones, or every one."""
    a = tables.Alert
    query = sa.select(a).where(a.project_id == project.id, a.model == model)
    if not include_closed:
        query = query.where(a.resolved_at.is_(None))
    query = query.order_by(a.started_at.desc(), a.id.desc()).limit(limit)
    with project.db.read() as session:
        return [_record_of(row) for row in session.scalars(query)]


# ---------------------------------------------------------------------- internals


def _check(project: Project, model: str, rules: Sequence[AlertRule]) -> None:
    if not model or "@" in model:
        raise InvalidInputError(
            f"Monitor a model by its name (e.g. 'loans'), not {model!r}: the version "
            "is the one the prediction log shows."
        )
    check_rules(project, rules)


def _evaluate(
    project: Project,
    model: str,
    rules: Sequence[AlertRule],
    at: datetime,
    metrics_url: str | None,
    sender: Sender | None,
    report_url: str | None,
) -> tuple[int | None, tuple[Evaluation, ...]]:
    """The monitored version, and each rule's transition with who was told."""
    longest = max(parse_duration(rule.window) for rule in rules)
    version = monitored_version(project, model, at - timedelta(seconds=longest), at)
    values = measure(project, model, rules, now=at, metrics_url=metrics_url, version=version)
    cooldown = parse_duration(project.spec.monitoring.cooldown)
    steps = evaluate_rules(
        rules, values, load_state(project, model), now=at, cooldown_seconds=cooldown
    )
    return version, tuple(
        _notify(project, step, model, version, report_url, sender) for step in steps
    )


def _apply_retention(project: Project, model: str, at: datetime) -> int:
    """Delete the prediction and feedback log partitions past the retention; files removed."""
    seconds = parse_duration(project.spec.monitoring.log.retention)
    removed = 0
    for root in (predictions_root(project), feedback_root(project)):
        try:
            removed += apply_retention(root, model, seconds, now=at)
        except OSError as exc:
            raise DataError(
                f"Cannot delete the log files of '{model}' past the retention in {root}: "
                f"{exc}. Check the folder's permissions."
            ) from None
    return removed


def _notify(
    project: Project,
    step: Transition,
    model: str,
    version: int | None,
    report_url: str | None,
    sender: Sender | None,
) -> Evaluation:
    """Escalate a firing or a recovery to the channels on call; other steps tell nobody."""
    if not step.notifies:
        return Evaluation(step)
    alert = _notification(step, model, version, report_url)
    return Evaluation(step, tuple(escalate(project.spec.monitoring, alert, sender=sender)))


def _notification(
    step: Transition, model: str, version: int | None, report_url: str | None
) -> Notification:
    rule = step.rule
    firing = step.event == "firing"
    started = step.after.since if firing else step.before.since
    assert started is not None
    return Notification(
        rule=rule.name,
        model=model,
        version=version,
        metric=rule.metric,
        value=step.measured.value,
        threshold=rule.threshold,
        direction=rule.direction,
        severity=rule.severity,
        state="firing" if firing else "resolved",
        window=rule.window,
        started_at=started,
        url=report_url,
    )


def _persist(
    project: Project,
    model: str,
    version: int | None,
    evaluations: Sequence[Evaluation],
    at: datetime,
    actor: str,
) -> None:
    """Open, update and close episodes, and audit each notification, in one transaction."""
    changing = [e for e in evaluations if e.transition.event not in ("ok", "not_judged")]
    if not changing:
        return
    a = tables.Alert
    with project.db.write() as session:
        open_rows = {
            row.rule: row
            for row in session.scalars(
                sa.select(a).where(
                    a.project_id == project.id, a.model == model, a.resolved_at.is_(None)
                )
            )
        }
        for evaluation in changing:
            step = evaluation.transition
            row = _apply(session, project, model, version, step, open_rows.get(step.rule.name), at)
            if row is None:
                continue
            row.notifications = [*row.notifications, *_sent(step, evaluation.deliveries, at)]
            if step.notifies:
                _audit(session, project, row, step, evaluation.deliveries, actor)


def _apply(
    session: Session,
    project: Project,
    model: str,
    version: int | None,
    step: Transition,
    row: tables.Alert | None,
    at: datetime,
) -> tables.Alert | None:
    """The row this step changes: the open episode, updated or closed, or a new one.

    None when the episode to update is gone (its row deleted by hand): nothing to record.
    """
    value = step.measured.value
    if row is not None:
        row.last_evaluated_at = at
        row.value = finite_or_none(value)
        if step.event in ("resolved", "cleared", "firing"):  # firing: a suppression ends
            row.resolved_at = at
            row.state = "resolved" if step.event == "resolved" else row.state
    if step.event not in ("firing", "suppressed"):
        return row
    rule = step.rule
    fresh = tables.Alert(
        project_id=project.id,
        model=model,
        version=version,
        rule=rule.name,
        metric=rule.metric,
        severity=rule.severity,
        state=step.event,
        value=finite_or_none(value),
        threshold=rule.threshold,
        direction=rule.direction,
        window_seconds=parse_duration(rule.window),
        started_at=at,
        last_evaluated_at=at,
        notifications=[],
    )
    session.add(fresh)
    session.flush()
    return fresh


def _evaluation_dict(evaluation: Evaluation) -> dict[str, Any]:
    step = evaluation.transition
    rule, measured = step.rule, step.measured
    return {
        "rule": rule.name,
        "metric": rule.metric,
        "value": finite_or_none(measured.value),
        "samples": measured.samples,
        "span_seconds": measured.span_seconds,
        "threshold": rule.threshold,
        "direction": rule.direction,
        "window": rule.window,
        "min_samples": rule.min_samples,
        "severity": rule.severity,
        "event": step.event,
        "deliveries": [
            {"channel": d.channel, "ok": d.ok, "error": d.error} for d in evaluation.deliveries
        ],
    }


def _sent(step: Transition, deliveries: Sequence[Delivery], at: datetime) -> list[dict[str, Any]]:
    return [
        {
            "event": step.event,
            "channel": d.channel,
            "ok": d.ok,
            "error": d.error,
            "at": at.isoformat(),
        }
        for d in deliveries
    ]


def _audit(
    session: Session,
    project: Project,
    row: tables.Alert,
    step: Transition,
    deliveries: Sequence[Delivery],
    actor: str,
) -> None:
    record(
        session,
        actor=actor,
        action=f"alert.{step.event}",
        object_type="alert",
        object_id=row.id,
        payload={
            "project": project.name,
            "model": row.model,
            "version": row.version,
            "rule": row.rule,
            "metric": row.metric,
            "severity": row.severity,
            "value": row.value,
            "threshold": row.threshold,
            "direction": row.direction,
            "window_seconds": row.window_seconds,
            "notified": [d.channel for d in deliveries if d.ok],
            "failed": [d.channel for d in deliveries if not d.ok],
        },
    )


def _record_of(row: tables.Alert) -> AlertRecord:
    return AlertRecord(
        row.id,
        row.model,
        row.version,
        row.rule,
        row.metric,
        row.severity,
        row.state,
        row.value,
        row.threshold,
        row.direction,
        row.window_seconds,
        row.started_at,
        row.resolved_at,
        row.last_evaluated_at,
        list(row.notifications or []),
    )


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """Set ``stop`` on SIGINT or SIGTERM (main thread only), restoring the old handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    names = (signal.SIGINT, signal.SIGTERM)
    previous = {name: signal.getsignal(name) for name in names}
    for name in names:
        signal.signal(name, lambda *_: stop.set())
    try:
        yield
    finally:
        for name, handler in previous.items():
            signal.signal(name, handler)
