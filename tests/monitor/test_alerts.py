"""The alert rule engine: firing, de-duplication, recovery, cool-down, minimum samples."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelyard.monitor.alerts import (
    AlertState,
    Measured,
    RuleState,
    Transition,
    breaches,
    evaluate_rules,
    next_state,
)
from modelyard.spec import AlertRule

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
STEP = timedelta(minutes=1)
COOLDOWN = 3600.0
HIGH = Measured(900.0, 500)
LOW = Measured(100.0, 500)


def _rule(**changes: object) -> AlertRule:
    fields: dict[str, object] = {
        "name": "p99-latency",
        "metric": "p99_latency_ms",
        "threshold": 500.0,
        "min_samples": 100,
    }
    return AlertRule.model_validate({**fields, **changes})


def _run(
    rule: AlertRule, values: list[Measured], *, start: datetime = T0, step: timedelta = STEP
) -> list[Transition]:
    """Evaluate ``rule`` once per value, one ``step`` apart, carrying the state along."""
    state: AlertState = {}
    steps = []
    for i, measured in enumerate(values):
        (found,) = evaluate_rules(
            [rule], {rule.name: measured}, state, now=start + i * step, cooldown_seconds=COOLDOWN
        )
        steps.append(found)
        state = next_state([found])
    return steps


def _events(steps: list[Transition]) -> list[str]:
    return [s.event for s in steps]


def test_a_sustained_breach_fires_once_then_recovers_once() -> None:
    steps = _run(_rule(), [LOW, HIGH, HIGH, HIGH, LOW, LOW])
    assert _events(steps) == ["ok", "firing", "still_firing", "still_firing", "resolved", "ok"]
    assert [s.notifies for s in steps] == [False, True, False, False, True, False]
    assert steps[1].after == RuleState("firing", T0 + STEP, T0 + STEP)
    assert steps[4].after == RuleState("ok", T0 + 4 * STEP, T0 + STEP)


def test_a_breach_within_the_cooldown_is_suppressed_then_fires_when_it_ends() -> None:
    # fires at minute 0, recovers at 1, breaches again at 2..61: the cool-down ends at 60
    steps = _run(_rule(), [HIGH, LOW, *[HIGH] * 61])
    events = _events(steps)
    assert events[:4] == ["firing", "resolved", "suppressed", "still_suppressed"]
    assert events.index("firing", 1) == 60
    assert set(events[3:60]) == {"still_suppressed"}
    assert events[61:] == ["still_firing", "still_firing"]
    assert sum(s.notifies for s in steps) == 3  # firing, resolved, firing


def test_a_suppressed_breach_that_clears_is_never_notified() -> None:
    steps = _run(_rule(), [HIGH, LOW, HIGH, LOW, LOW])
    assert _events(steps) == ["firing", "resolved", "suppressed", "cleared", "ok"]
    assert steps[3].after.status == "ok"
    assert steps[3].after.last_fired_at == T0  # the cool-down still counts from the firing


def test_after_the_cooldown_a_new_breach_fires_again() -> None:
    steps = _run(_rule(), [HIGH, LOW, HIGH], step=timedelta(minutes=30))
    assert _events(steps) == ["firing", "resolved", "firing"]  # minute 60: exactly the cool-down


@pytest.mark.parametrize("measured", [Measured(900.0, 99), Measured(None, 1_000)])
def test_too_few_samples_or_no_value_leave_the_state_unchanged(measured: Measured) -> None:
    rule = _rule()
    firing = RuleState("firing", T0, T0)
    for before in (RuleState(), firing):
        (step,) = evaluate_rules(
            [rule], {rule.name: measured}, {rule.name: before}, now=T0 + STEP, cooldown_seconds=0
        )
        assert (step.event, step.after, step.notifies) == ("not_judged", before, False)
        assert step.breached is None


def test_min_samples_is_inclusive() -> None:
    (step,) = _run(_rule(min_samples=100), [Measured(900.0, 100)])
    assert step.event == "firing"


def test_a_rule_missing_from_the_values_is_not_judged() -> None:
    steps = evaluate_rules([_rule()], {}, {}, now=T0, cooldown_seconds=COOLDOWN)
    assert _events(steps) == ["not_judged"]


def test_direction_below_and_the_threshold_itself() -> None:
    below = _rule(name="auc", metric="roc_auc", threshold=0.7, direction="below")
    assert breaches(below, 0.69) and not breaches(below, 0.7) and not breaches(below, 0.71)
    above = _rule()
    assert breaches(above, 500.5) and not breaches(above, 500.0)
    assert not breaches(above, float("nan")) and not breaches(above, None)
    steps = _run(below, [Measured(0.65, 500), Measured(0.75, 500)])
    assert _events(steps) == ["firing", "resolved"]


def test_rules_are_evaluated_independently() -> None:
    slow, auc = _rule(), _rule(name="auc", metric="roc_auc", threshold=0.7, direction="below")
    state = {slow.name: RuleState("firing", T0, T0)}
    values = {slow.name: HIGH, auc.name: Measured(0.6, 500)}
    steps = evaluate_rules([slow, auc], values, state, now=T0 + STEP, cooldown_seconds=COOLDOWN)
    assert _events(steps) == ["still_firing", "firing"]
    assert set(next_state(steps)) == {slow.name, auc.name}


# ------------------------------------------------------------------ properties

breach_runs = st.lists(st.booleans(), min_size=1, max_size=200)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=1, max_value=300), st.integers(min_value=0, max_value=600))
def test_property_a_sustained_breach_notifies_exactly_once(evaluations: int, gap: int) -> None:
    steps = _run(_rule(), [HIGH] * evaluations, step=timedelta(seconds=gap))
    assert sum(s.notifies for s in steps) == 1
    assert steps[0].event == "firing"


@settings(max_examples=300, deadline=None)
@given(breach_runs, st.integers(min_value=1, max_value=7_200))
def test_property_notifications_alternate_and_respect_the_cooldown(
    breached: list[bool], gap_seconds: int
) -> None:
    values = [HIGH if b else LOW for b in breached]
    steps = _run(_rule(), values, step=timedelta(seconds=gap_seconds))
    sent = [(i, s.event) for i, s in enumerate(steps) if s.notifies]
    # firing, resolved, firing, ... : never two firings without a recovery between them
    assert [e for _, e in sent] == ["firing", "resolved"] * (len(sent) // 2) + ["firing"] * (
        len(sent) % 2
    )
    firings = [i for i, e in sent if e == "firing"]
    for earlier, later in pairwise(firings):
        assert (later - earlier) * gap_seconds >= COOLDOWN
    # the state always says firing exactly when the last notification was a firing
    for i, step in enumerate(steps):
        last = [e for j, e in sent if j <= i]
        assert (step.after.status == "firing") == (bool(last) and last[-1] == "firing")


@settings(max_examples=200, deadline=None)
@given(breach_runs)
def test_property_every_breach_outside_the_cooldown_ends_up_firing(breached: list[bool]) -> None:
    # with no cool-down, a breached evaluation is always firing or still firing
    rule = _rule()
    state: AlertState = {}
    for i, b in enumerate(breached):
        (step,) = evaluate_rules(
            [rule], {rule.name: HIGH if b else LOW}, state, now=T0 + i * STEP, cooldown_seconds=0
        )
        assert (step.after.status == "firing") == b
        state = next_state([step])
