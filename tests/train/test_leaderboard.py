from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pytest

from modelyard.data.encoding import FeatureEncoder
from modelyard.evaluate.gates import GateResult, check_gates
from modelyard.spec import Spec, parse_spec
from modelyard.train.leaderboard import build_leaderboard, json_records, measure_costs

SPEC = "name: p\ntask: regression\ntarget: y\nmetrics:\n  - name: rmse\n    threshold: 2.0\n"


@dataclass
class Fake:
    name: str
    baseline: bool
    metrics: dict[str, float]
    status: str = "finished"
    error: str | None = None
    run_id: str = "run"
    gates: list[GateResult] = field(default_factory=list)


def fake(spec: Spec, name: str, baseline: bool, **metrics: float) -> Fake:
    gates = check_gates(spec, metrics, "model")
    return Fake(name, baseline, metrics, run_id=f"run-{name}", gates=gates)


def test_ranked_on_the_primary_metric_in_its_direction_failed_last() -> None:
    spec = parse_spec(SPEC)  # rmse: lower is better
    rows = build_leaderboard(
        spec,
        [
            fake(spec, "mean", True, rmse=3.0, fit_seconds=0.01),
            Fake("lightgbm", False, {}, status="failed", error="LightGBMError: boom"),
            fake(spec, "linear", True, rmse=2.5),
            fake(spec, "mlp", False, rmse=1.5, predict_p99_ms=2.0),
            fake(spec, "tree", False, rmse=2.8),
        ],
    )
    assert [(r.rank, r.name) for r in rows] == [
        (1, "mlp"),
        (2, "linear"),
        (3, "tree"),
        (4, "mean"),
        (None, "lightgbm"),
    ]
    by_name = {r.name: r for r in rows}
    assert by_name["mlp"].margin == pytest.approx(-1.0)  # 1.5 − best baseline 2.5
    assert not by_name["mlp"].loses_to_baseline
    assert by_name["tree"].loses_to_baseline and by_name["tree"].margin == pytest.approx(0.3)
    assert not by_name["mean"].loses_to_baseline  # a baseline is the yardstick, not judged
    assert by_name["mlp"].gates == {"rmse": True} and by_name["linear"].gates == {"rmse": False}
    assert by_name["mlp"].costs == {"predict_p99_ms": 2.0}
    failed = by_name["lightgbm"]
    assert failed.status == "failed" and "boom" in str(failed.error) and not failed.gates_passed
    assert failed.margin is None
    assert rows[0].to_dict()["gates_passed"] is True


def test_higher_is_better_metrics_and_no_baseline() -> None:
    spec = parse_spec("name: p\ntask: binary\ntarget: y\n")  # roc_auc ≥ 0.7, then f1
    rows = build_leaderboard(
        spec, [fake(spec, "a", False, roc_auc=0.6, f1=0.9), fake(spec, "b", False, roc_auc=0.8)]
    )
    assert [r.name for r in rows] == ["b", "a"]
    assert rows[0].primary == "roc_auc" and rows[0].margin is None
    assert not any(r.loses_to_baseline for r in rows)
    assert rows[1].metrics == {"roc_auc": 0.6, "f1": 0.9}
    assert rows[0].thresholds == {"roc_auc": "roc_auc ≥ 0.7"}


class CountingBundle:
    """Scores like a model and counts how it is called."""

    def __init__(self) -> None:
        self.encoded: list[int] = []

    def encode_records(self, records: list[Any]) -> np.ndarray:
        self.encoded.append(len(records))
        return np.array([[r["x"]] for r in records], dtype=float)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return X[:, 0] * 2


def test_costs_go_through_the_serving_path_one_record_at_a_time() -> None:
    bundle = CountingBundle()
    costs = measure_costs(bundle, [{"x": float(i)} for i in range(7)])
    single = [n for n in bundle.encoded if n == 1]
    assert len(single) >= 200
    assert bundle.encoded.count(1024) == 3
    assert set(costs) == {"predict_p50_ms", "predict_p99_ms", "rows_per_second"}
    assert 0 < costs["predict_p50_ms"] <= costs["predict_p99_ms"]
    assert costs["rows_per_second"] > 0
    assert measure_costs(CountingBundle(), []) == {}


def test_records_look_like_what_a_json_client_sends() -> None:
    frame = pd.DataFrame(
        {
            "n": [1, None],
            "flag": [True, False],
            "c": ["a", None],
            "when": pd.to_datetime(["2024-01-01", None]),
            "unused": [1, 2],
        }
    )
    encoder = FeatureEncoder.fit(frame, ["n", "flag", "c"])
    records = json_records(frame, ["n", "flag", "c", "when"], encoder)
    assert records == [
        {"n": 1.0, "flag": "True", "c": "a", "when": "2024-01-01T00:00:00"},
        {"n": None, "flag": "False", "c": None, "when": None},
    ]
    assert encoder.encode_records(records).shape == (2, 3)
