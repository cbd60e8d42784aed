"""Gates: each threshold in the spec, checked against a measured value.

A gate whose metric was not measured is reported as not passed, never silently
skipped: a threshold in the spec is a promise that promotion will check it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from modelyard.spec import Spec


@dataclass(frozen=True)
class GateResult:
    """One spec threshold and what was measured against it."""

    name: str
    direction: str
    threshold: float
    value: float | None
    passed: bool

    @property
    def label(self) -> str:
        sign = "≥" if self.direction == "max" else "≤"
        return f"{self.name} {sign} {self.threshold:g}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_gates(
    spec: Spec, measured: dict[str, float], kind: Literal["model", "system"] | None = None
) -> list[GateResult]:
    """One result per spec metric with a threshold; ``kind`` keeps "model" or "system" ones."""
    results = []
    for goal in spec.metric_goals(kind):
        if goal.threshold is None:
            continue
        value = measured.get(goal.name)
        passed = value is not None and goal.passes(value)
        results.append(
            GateResult(goal.name, goal.direction or "max", goal.threshold, value, passed)
        )
    return results
