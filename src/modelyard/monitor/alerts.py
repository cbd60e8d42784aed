"""The alert rule engine: from measured values and the last state to what happens next.

    values = {"p99-latency": Measured(812.0, samples=240)}       # by rule name
    steps = evaluate_rules(spec.monitoring.alerts, values, state, now=now, cooldown_seconds=3600)
    notify = [s for s in steps if s.notifies]                     # firing or resolved
    state = next_state(steps)                                     # persist it

``evaluate_rules`` is a pure function: no clock, no store, no network. Each
rule is ``ok``, ``firing`` or ``suppressed``, and each evaluation gives an event:

==========  ==========================================  ==========================
status      breached                                    not breached
==========  ==========================================  ==========================
ok          **firing**, or *suppressed* (→ suppressed)  ok
            while the cool-down runs
firing      still_firing                                **resolved** (→ ok)
suppressed  **firing** once the cool-down is over,      cleared (→ ok)
            else still_suppressed
==========  ==========================================  ==========================

- **firing** notifies once; while the breach lasts, later evaluations are
  ``still_firing`` (de-duplication: no new notification).
- **resolved** notifies once, when a firing rule is no longer breached.
- **cool-down**: a rule cannot fire again until ``cooldown_seconds`` have
  passed since it last fired. A breach before then is ``suppressed``:
  recorded, not notified; if it is still breached when the cool-down ends,
  the rule fires then.
- **not judged**: a window with fewer than the rule's ``min_samples``
  observations, or no value at all, leaves the state exactly as it was.

A metric breaches ``above`` when its value is greater than the threshold,
``below`` when it is less (equal is not a breach).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

from modelyard.spec import AlertRule

__all__ = [
    "NOTIFYING",
    "AlertState",
    "Event",
    "Measured",
    "RuleState",
    "Status",
    "Transition",
    "breaches",
    "evaluate_rule",
    "evaluate_rules",
    "next_state",
]

Status = Literal["ok", "firing", "suppressed"]
Event = Literal[
    "firing",
    "resolved",
    "suppressed",
    "still_firing",
    "still_suppressed",
    "cleared",
    "ok",
    "not_judged",
]
NOTIFYING: frozenset[Event] = frozenset({"firing", "resolved"})


@dataclass(frozen=True)
class Measured:
    """A metric's value over a rule's window, and how many observations it rests on.

    ``span_seconds`` is the time the value covers when it is the difference of
    two moments rather than a read of the window (``error_rate``, from kept
    scrapes of the server's counters): shorter than the window while the
    monitor has not yet run for a whole window.
    """

    value: float | None
    samples: int
    span_seconds: float | None = None


@dataclass(frozen=True)
class RuleState:
    """Where a rule stands: its status, since when, and when it last fired (the cool-down)."""

    status: Status = "ok"
    since: datetime | None = None
    last_fired_at: datetime | None = None


AlertState = Mapping[str, RuleState]
"""Each rule's state, by rule name; a rule missing from it is ``ok`` and has never fired."""


@dataclass(frozen=True)
class Transition:
    """One rule's evaluation: what was measured, what happened, and the rule's new state."""

    rule: AlertRule
    measured: Measured
    event: Event
    before: RuleState
    after: RuleState

    @property
    def notifies(self) -> bool:
        """Whether on-call hears about it: a new firing, or a recovery."""
        return self.event in NOTIFYING

    @property
    def breached(self) -> bool | None:
        """Whether the value breached the threshold (None: not judged)."""
        if self.event == "not_judged":
            return None
        return breaches(self.rule, self.measured.value)


def evaluate_rules(
    rules: Sequence[AlertRule],
    values: Mapping[str, Measured],
    state: AlertState,
    *,
    now: datetime,
    cooldown_seconds: float,
) -> list[Transition]:
    """Evaluate every rule on its measured value (by rule name; missing: not judged)."""
    cooldown = timedelta(seconds=cooldown_seconds)
    return [
        evaluate_rule(
            rule,
            values.get(rule.name, Measured(None, 0)),
            state.get(rule.name, RuleState()),
            now=now,
            cooldown=cooldown,
        )
        for rule in rules
    ]


def evaluate_rule(
    rule: AlertRule, measured: Measured, before: RuleState, *, now: datetime, cooldown: timedelta
) -> Transition:
    """One rule's step of the state machine drawn in the module docstring."""
    if not _judged(rule, measured):
        return Transition(rule, measured, "not_judged", before, before)
    event, after = _step(before, breaches(rule, measured.value), now, cooldown)
    return Transition(rule, measured, event, before, after)


def breaches(rule: AlertRule, value: float | None) -> bool:
    """Whether ``value`` is on the wrong side of the rule's threshold."""
    if value is None or math.isnan(value):
        return False
    return value > rule.threshold if rule.direction == "above" else value < rule.threshold


def next_state(transitions: Iterable[Transition]) -> dict[str, RuleState]:
    """The state to keep for the next evaluation."""
    return {t.rule.name: t.after for t in transitions}


def _judged(rule: AlertRule, measured: Measured) -> bool:
    value = measured.value
    return value is not None and not math.isnan(value) and measured.samples >= rule.min_samples


def _step(
    before: RuleState, breached: bool, now: datetime, cooldown: timedelta
) -> tuple[Event, RuleState]:
    if before.status == "firing":
        if breached:
            return "still_firing", before
        return "resolved", RuleState("ok", now, before.last_fired_at)
    if not breached:
        if before.status == "suppressed":
            return "cleared", RuleState("ok", now, before.last_fired_at)
        return "ok", before
    cooling = before.last_fired_at is not None and now - before.last_fired_at < cooldown
    if not cooling:
        return "firing", RuleState("firing", now, now)
    if before.status == "suppressed":
        return "still_suppressed", before
    return "suppressed", replace(before, status="suppressed", since=now)
