"""The catalogue of names a spec may use: tasks, metrics, model families, durations.

Kept apart from the models in ``modelyard.spec`` so that evaluation, search and
the CLI can read a metric's direction, kind and tasks from this one place.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Annotated, Any, Literal, get_args

from pydantic import Field, Strict

SPEC_FILENAME = "modelyard.yaml"

Task = Literal["binary", "multiclass", "regression", "ranking"]
TASKS: tuple[str, ...] = get_args(Task)
Direction = Literal["max", "min"]
Role = Literal["viewer", "scientist", "approver", "operator", "admin"]
TriggerKind = Literal["drift", "performance", "labels", "schedule", "rule_change", "manual"]

# Strict numbers: YAML already types values, so `true` or "0.7" is a mistake, not a number.
Number = Annotated[float, Strict()]
Integer = Annotated[int, Strict()]
NonNegative = Annotated[float, Strict(), Field(ge=0)]
Positive = Annotated[float, Strict(), Field(gt=0)]
Fraction = Annotated[float, Strict(), Field(ge=0, le=1)]
OpenFraction = Annotated[float, Strict(), Field(gt=0, lt=1)]
Column = Annotated[str, Field(min_length=1)]


# --------------------------------------------------------------------------- catalogue


@dataclass(frozen=True)
class MetricInfo:
    """What modelyard knows about one metric: which way is better, where it applies."""

    direction: Direction
    kind: Literal["model", "system"]
    tasks: frozenset[str]
    low: float | None = 0.0
    high: float | None = 1.0
    at_k: bool = False


_BIN = frozenset({"binary"})
_CLS = frozenset({"binary", "multiclass"})
_REG = frozenset({"regression"})
_RANK = frozenset({"ranking"})
_ALL = frozenset(TASKS)

METRICS: Mapping[str, MetricInfo] = MappingProxyType(
    {
        "accuracy": MetricInfo("max", "model", _CLS),
        "balanced_accuracy": MetricInfo("max", "model", _CLS),
        "precision": MetricInfo("max", "model", _BIN),
        "recall": MetricInfo("max", "model", _BIN),
        "f1": MetricInfo("max", "model", _BIN),
        "precision_macro": MetricInfo("max", "model", _CLS),
        "recall_macro": MetricInfo("max", "model", _CLS),
        "f1_macro": MetricInfo("max", "model", _CLS),
        "roc_auc": MetricInfo("max", "model", _CLS),
        "pr_auc": MetricInfo("max", "model", _CLS),
        "log_loss": MetricInfo("min", "model", _CLS, high=None),
        "brier": MetricInfo("min", "model", _CLS, high=None),
        "ece": MetricInfo("min", "model", _CLS),
        "mae": MetricInfo("min", "model", _REG, high=None),
        "rmse": MetricInfo("min", "model", _REG, high=None),
        "r2": MetricInfo("max", "model", _REG, low=None),
        "mape": MetricInfo("min", "model", _REG, high=None),
        "precision_at_k": MetricInfo("max", "model", _RANK, at_k=True),
        "recall_at_k": MetricInfo("max", "model", _RANK, at_k=True),
        "ndcg_at_k": MetricInfo("max", "model", _RANK, at_k=True),
        "p99_latency_ms": MetricInfo("min", "system", _ALL, high=None),
        "error_rate": MetricInfo("min", "system", _ALL),
        "availability": MetricInfo("max", "system", _ALL),
        "cost_per_1k_predictions": MetricInfo("min", "system", _ALL, high=None),
        "throughput_rps": MetricInfo("max", "system", _ALL, high=None),
    }
)

DEFAULT_K = 10
# The goals a spec gets when it has no `metrics` section.
DEFAULT_METRICS: Mapping[str, tuple[Mapping[str, Any], ...]] = MappingProxyType(
    {
        "binary": ({"name": "roc_auc", "threshold": 0.7}, {"name": "f1"}),
        "multiclass": ({"name": "f1_macro"}, {"name": "accuracy"}),
        "regression": ({"name": "rmse"}, {"name": "mae"}, {"name": "r2", "threshold": 0.0}),
        "ranking": (
            {"name": "ndcg_at_k", "k": DEFAULT_K},
            {"name": "precision_at_k", "k": DEFAULT_K},
        ),
    }
)


CLASSIFICATION_TASKS = frozenset({"binary", "multiclass"})
_LEARNED = frozenset({"binary", "multiclass", "regression"})

# Model families and the tasks each can learn; baselines first.
MODEL_FAMILIES: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "majority": CLASSIFICATION_TASKS,
        "mean": frozenset({"regression"}),
        "logistic": CLASSIFICATION_TASKS,
        "linear": frozenset({"regression"}),
        "tree": _LEARNED,
        "lightgbm": _LEARNED,
        "hist_gb": _LEARNED,
        "mlp": _LEARNED,
    }
)


def metrics_for(task: str) -> list[str]:
    """The catalogue names that apply to ``task``, model metrics first."""
    return [name for name, info in METRICS.items() if task in info.tasks]


def parse_duration(text: str) -> int:
    """Seconds in a duration such as ``30s``, ``15m``, ``6h``, ``1d`` or ``2w``."""
    match = re.fullmatch(r"([1-9]\d*)([smhdw])", text.strip())
    if match is None:
        raise ValueError(
            f"must be a duration: a whole number and a unit s, m, h, d or w (e.g. 1d); got {text!r}"
        )
    unit = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[match.group(2)]
    return int(match.group(1)) * unit
