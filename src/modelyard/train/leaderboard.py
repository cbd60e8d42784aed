"""The leaderboard: every candidate's quality *and* what it costs to serve.

Costs are measured during training on the path a server takes
(``measure_costs``): a single-row request is ``bundle.encode_records([record])``
then ``predict`` — cleaning replay, validation, encoding and the model — timed
over ``SINGLE_ROW_CALLS`` calls on held-out test records, reported as p50 and
p99 in milliseconds; throughput is rows per second at a batch of
``BATCH_ROWS`` records through the same path (median of three). Size is the
saved model blob in bytes (``model_bytes``), plus ``onnx_bytes`` when an ONNX
twin was exported. Training time is the wall time of ``fit`` alone.

``build_leaderboard(spec, candidates)`` ranks the candidates on the primary
metric (the spec's first model metric), marks each spec threshold as passed
or failed, and measures every candidate against the best baseline on the
primary metric: ``margin`` is the candidate's value minus the best
baseline's, and a candidate that is worse than that baseline is marked
``loses_to_baseline`` — it is not worth its serving cost. Failed candidates
are listed last, with their error.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd

from modelyard.data.encoding import FeatureEncoder
from modelyard.evaluate.gates import GateResult
from modelyard.spec import MetricGoal, Spec

SINGLE_ROW_CALLS = 200
BATCH_ROWS = 1_024
#: Run metrics that describe cost, not quality; they vary between runs of the same model.
COST_METRICS = (
    "fit_seconds",
    "predict_p50_ms",
    "predict_p99_ms",
    "rows_per_second",
    "model_bytes",
    "onnx_bytes",
)
#: Costs that are timings (and so never compared when a run is reproduced).
TIMINGS = ("fit_seconds", "predict_p50_ms", "predict_p99_ms", "rows_per_second")


class Scoring(Protocol):
    """What cost measurement needs of a bundle: the serving path."""

    def encode_records(self, records: list[Any]) -> np.ndarray: ...

    def predict(self, X: np.ndarray) -> np.ndarray: ...


class Candidate(Protocol):
    """What the leaderboard reads of a trained candidate (``trainer.CandidateResult``)."""

    name: str
    baseline: bool
    run_id: str
    status: str
    metrics: dict[str, float]
    gates: list[GateResult]
    error: str | None


@dataclass(frozen=True)
class LeaderboardRow:
    """One candidate on the leaderboard."""

    name: str
    run_id: str
    status: str
    baseline: bool
    metrics: dict[str, float]
    gates: dict[str, bool]
    costs: dict[str, float]
    primary: str | None
    margin: float | None = None
    loses_to_baseline: bool = False
    rank: int | None = None
    error: str | None = None
    thresholds: dict[str, str] = field(default_factory=dict)

    @property
    def gates_passed(self) -> bool:
        return self.status == "finished" and all(self.gates.values())

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "gates_passed": self.gates_passed}


def build_leaderboard(spec: Spec, candidates: Sequence[Candidate]) -> list[LeaderboardRow]:
    """Rank ``candidates`` on the spec's first model metric; failed ones last."""
    goals = spec.metric_goals("model")
    primary = goals[0] if goals else None
    finished = [c for c in candidates if c.status == "finished"]
    best_baseline = _best_value(primary, [c for c in finished if c.baseline])
    ranked = sorted(finished, key=lambda c: _sort_key(primary, c))
    rows = [_row(c, goals, primary, best_baseline, rank) for rank, c in enumerate(ranked, start=1)]
    rows += [_row(c, goals, primary, None, None) for c in candidates if c.status != "finished"]
    return rows


def _row(
    candidate: Candidate,
    goals: Sequence[MetricGoal],
    primary: MetricGoal | None,
    best_baseline: float | None,
    rank: int | None,
) -> LeaderboardRow:
    metrics = {g.name: candidate.metrics[g.name] for g in goals if g.name in candidate.metrics}
    value = metrics.get(primary.name) if primary else None
    margin = None if value is None or best_baseline is None else value - best_baseline
    loses = (
        not candidate.baseline
        and margin is not None
        and primary is not None
        and not _at_least_as_good(primary, value, best_baseline)
    )
    return LeaderboardRow(
        name=candidate.name,
        run_id=candidate.run_id,
        status=candidate.status,
        baseline=candidate.baseline,
        metrics=metrics,
        gates={g.name: g.passed for g in candidate.gates},
        costs={k: candidate.metrics[k] for k in COST_METRICS if k in candidate.metrics},
        primary=primary.name if primary else None,
        margin=margin,
        loses_to_baseline=loses,
        rank=rank,
        error=candidate.error,
        thresholds={g.name: g.label for g in candidate.gates},
    )


def _at_least_as_good(goal: MetricGoal, value: float | None, other: float | None) -> bool:
    if value is None or other is None or math.isnan(value):
        return False
    return value >= other if goal.direction == "max" else value <= other


def _best_value(goal: MetricGoal | None, candidates: Sequence[Candidate]) -> float | None:
    values = [
        c.metrics[goal.name]
        for c in candidates
        if goal is not None and goal.name in c.metrics and not math.isnan(c.metrics[goal.name])
    ]
    if goal is None or not values:
        return None
    return max(values) if goal.direction == "max" else min(values)


def _sort_key(goal: MetricGoal | None, candidate: Candidate) -> tuple[int, float]:
    """Best first; a missing or NaN primary value sorts last."""
    value = candidate.metrics.get(goal.name, math.nan) if goal else math.nan
    if math.isnan(value):
        return (1, 0.0)
    return (0, -value if goal is not None and goal.direction == "max" else value)


# --------------------------------------------------------------------------- costs


def measure_costs(
    bundle: Scoring,
    records: list[dict[str, Any]],
    *,
    calls: int = SINGLE_ROW_CALLS,
    batch: int = BATCH_ROWS,
) -> dict[str, float]:
    """Single-row p50 / p99 latency (ms) and rows/s at ``batch``, on the serving path."""
    if not records:
        return {}
    for record in records[:10]:  # warm caches and lazy imports before timing
        bundle.predict(bundle.encode_records([record]))
    timings = np.empty(calls)
    for i in range(calls):
        one = [records[i % len(records)]]
        started = time.perf_counter()
        bundle.predict(bundle.encode_records(one))
        timings[i] = time.perf_counter() - started
    rows = [records[i % len(records)] for i in range(batch)]
    batch_seconds = []
    for _ in range(3):
        started = time.perf_counter()
        bundle.predict(bundle.encode_records(rows))
        batch_seconds.append(time.perf_counter() - started)
    return {
        "predict_p50_ms": float(np.percentile(timings, 50) * 1000),
        "predict_p99_ms": float(np.percentile(timings, 99) * 1000),
        "rows_per_second": float(batch / max(np.median(batch_seconds), 1e-9)),
    }


def json_records(
    frame: pd.DataFrame, columns: Sequence[str], encoder: FeatureEncoder
) -> list[dict[str, Any]]:
    """Rows of ``frame`` as a JSON client sends them: categories as text, missing as null."""
    kinds = {f.name: f.kind for f in encoder.fields}
    present = [c for c in columns if c in frame.columns]
    values = frame[present].astype(object).to_numpy()
    return [
        {c: _json_value(v, kinds.get(c)) for c, v in zip(present, row, strict=True)}
        for row in values
    ]


def _json_value(value: Any, kind: str | None) -> Any:
    if value is None or (not isinstance(value, str) and bool(pd.isna(value))):
        return None
    if kind == "category":
        return str(value)
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if kind == "number" and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return value
