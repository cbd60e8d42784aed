"""What a model file says about itself: task, features, categories, the ranges it splits on.

``model_facts(flavor, model, data)`` reads a model loaded by
``train.flavors.load_model`` — a LightGBM booster, an XGBoost booster, a
scikit-learn estimator, an ONNX Runtime session — and answers what importing
it needs to know. Whatever the model does not record is None, and importing
asks the user (``--task``) or the data (``--signature``) for it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from modelyard.errors import ArtifactError
from modelyard.train.onnx import FLOAT_INPUTS, PROBABILITY_OUTPUTS, graph_input, output_name

_AUTO_NAME = re.compile(r"Column_(\d+)")  # LightGBM's names for a bare matrix's columns


@dataclass(frozen=True)
class ModelFacts:
    """What a model file says about itself (None: it does not say).

    ``categorical`` maps a feature's index to its vocabulary (code i is value
    i), or to None when the model takes integer codes without naming them.
    ``kinds_known``: the model records which features are numbers (LightGBM,
    XGBoost), so a text column for one of them is a mistake. ``ranges`` are
    the bounds the model's splits (or its training data) span, per feature.
    """

    n_features: int | None
    task: str | None
    task_note: str = ""
    classes: tuple[str, ...] | None = None
    names: tuple[str, ...] | None = None
    categorical: dict[int, tuple[str, ...] | None] = field(default_factory=dict)
    kinds_known: bool = False
    ranges: dict[int, tuple[float, float]] = field(default_factory=dict)


def model_facts(flavor: str, model: Any, data: bytes) -> ModelFacts:
    """What the loaded ``model`` (from ``flavors.load_model``) says about itself."""
    if flavor == "lightgbm":
        return _lightgbm_facts(model, data)
    if flavor == "xgboost":
        return _xgboost_facts(model)
    if flavor == "sklearn":
        return _sklearn_facts(model)
    return _onnx_facts(model)


_LIGHTGBM_TASKS = {
    "binary": "binary",
    "cross_entropy": "binary",
    "xentropy": "binary",
    "multiclass": "multiclass",
    "softmax": "multiclass",
    "multiclassova": "multiclass",
    "multiclass_ova": "multiclass",
    "ova": "multiclass",
    "ovr": "multiclass",
}
_RANKING = ("lambdarank", "rank_xendcg", "xendcg", "xe_ndcg", "xe_ndcg_mart", "xendcg_mart")


def _lightgbm_facts(booster: Any, data: bytes) -> ModelFacts:
    header = _lightgbm_header(data.decode())
    task, note = _lightgbm_task(header.get("objective", "").split(" ")[0])
    n_classes = int(header.get("num_class", "1"))
    names = [str(n) for n in booster.feature_name()]
    categorical = _lightgbm_categorical(booster)
    infos = header.get("feature_infos", "").split(" ")
    return ModelFacts(
        n_features=int(booster.num_feature()),
        task=task,
        task_note=note,
        classes=tuple(str(i) for i in range(n_classes)) if n_classes > 2 else None,
        names=None if _auto_named(names) else tuple(names),
        categorical=categorical,
        kinds_known=True,
        ranges={i: r for i, info in enumerate(infos) if (r := _lightgbm_range(info))},
    )


def _lightgbm_task(objective: str) -> tuple[str | None, str]:
    if objective in _RANKING or objective in ("", "custom", "none"):
        return None, f"its objective is {objective or 'custom'!r}"
    return _LIGHTGBM_TASKS.get(objective, "regression"), ""


def _lightgbm_header(text: str) -> dict[str, str]:
    """``key=value`` lines before the first tree of a LightGBM text model."""
    head = text.split("\nTree=", 1)[0]
    return dict(line.split("=", 1) for line in head.splitlines() if "=" in line)


def _lightgbm_categorical(booster: Any) -> dict[int, tuple[str, ...] | None]:
    indices = booster.params.get("categorical_feature") or []
    if isinstance(indices, str):
        indices = [int(i) for i in indices.split(",") if i.strip().isdigit()]
    indices = sorted(int(i) for i in indices if str(i).lstrip("-").isdigit())
    vocabularies = booster.pandas_categorical or []
    if len(vocabularies) != len(indices):  # categories given as codes: no names to align
        return dict.fromkeys(indices)
    return {i: tuple(str(v) for v in vocab) for i, vocab in zip(indices, vocabularies, strict=True)}


def _lightgbm_range(info: str) -> tuple[float, float] | None:
    """``[lo:hi]`` for a number, ``v:v:v`` (category codes) for a category, ``none``."""
    parts = info.strip("[]").split(":")
    try:
        values = [float(p) for p in parts if p]
    except ValueError:
        return None
    return (min(values), max(values)) if values else None


def _auto_named(names: list[str]) -> bool:
    return all(
        (m := _AUTO_NAME.fullmatch(n)) is not None and int(m.group(1)) == i
        for i, n in enumerate(names)
    )


def _xgboost_facts(booster: Any) -> ModelFacts:
    learner = json.loads(booster.save_config())["learner"]
    objective = str(learner["objective"]["name"])
    params = learner["learner_model_param"]
    n_classes = int(params.get("num_class", "0"))
    task, note = _xgboost_task(objective, int(params.get("num_target", "1")))
    types = booster.feature_types or []
    categorical: dict[int, tuple[str, ...] | None] = {
        i: None for i, t in enumerate(types) if t == "c"
    }
    categorical.update(_xgboost_vocabularies(booster, categorical))
    return ModelFacts(
        n_features=int(booster.num_features()),
        task=task,
        task_note=note,
        classes=tuple(str(i) for i in range(n_classes)) if task == "multiclass" else None,
        names=tuple(booster.feature_names) if booster.feature_names else None,
        categorical=categorical,
        kinds_known=True,
        ranges=_xgboost_ranges(booster),
    )


def _xgboost_task(objective: str, n_targets: int) -> tuple[str | None, str]:
    if n_targets > 1:
        return None, f"it predicts {n_targets} targets at once"
    if objective == "binary:logistic":
        return "binary", ""
    if objective == "multi:softprob":
        return "multiclass", ""
    if objective.startswith(("reg:", "count:", "survival:")):
        return "regression", ""
    hint = {
        "multi:softmax": " (it outputs class labels; save it with objective multi:softprob)",
        "binary:logitraw": " (it outputs margins; save it with objective binary:logistic)",
        "binary:hinge": " (it outputs labels; save it with objective binary:logistic)",
    }.get(objective, "")
    return None, f"its objective is {objective!r}{hint}"


def _xgboost_vocabularies(booster: Any, categorical: dict[int, Any]) -> dict[int, tuple[str, ...]]:
    """The categories XGBoost (3.1 and later) stores for features trained as pandas categoricals."""
    if not categorical or not hasattr(booster, "get_categories"):
        return {}
    try:
        columns = booster.get_categories(export_to_arrow=True).to_arrow()
    except Exception:  # older or newer XGBoost without stored categories: codes only
        return {}
    return {
        i: tuple(str(v) for v in values.to_pylist())
        for i, (_, values) in enumerate(columns)
        if i in categorical and values is not None
    }


def _xgboost_ranges(booster: Any) -> dict[int, tuple[float, float]]:
    """Per feature, the span of the split thresholds, widened by a tenth on each side."""
    try:
        trees = booster.trees_to_dataframe()
    except Exception:  # a model pandas cannot tabulate: draw from N(0, 1) instead
        return {}
    names = list(booster.feature_names or [f"f{i}" for i in range(booster.num_features())])
    splits = trees[trees["Feature"] != "Leaf"].groupby("Feature")["Split"].agg(["min", "max"])
    ranges = {}
    for feature, (low, high) in splits.dropna().iterrows():
        if feature in names:
            pad = 0.1 * (high - low) or 1.0
            ranges[names.index(feature)] = (float(low - pad), float(high + pad))
    return ranges


def _sklearn_facts(estimator: Any) -> ModelFacts:
    from sklearn.base import is_regressor

    names = getattr(estimator, "feature_names_in_", None)
    n_features = getattr(estimator, "n_features_in_", None)
    classes = getattr(estimator, "classes_", None)
    task: str | None = "regression"
    note = ""
    if classes is None and not is_regressor(estimator):
        task = None
        note = f"{type(estimator).__name__} is neither a classifier nor a regressor"
    elif classes is not None:
        task = "binary" if len(classes) == 2 else "multiclass"
        if not hasattr(estimator, "predict_proba"):
            task = None
            note = (
                f"it is a classifier without predict_proba ({type(estimator).__name__}); "
                "refit it with probabilities (e.g. SVC(probability=True) or "
                "CalibratedClassifierCV)"
            )
    return ModelFacts(
        n_features=None if n_features is None else int(n_features),
        task=task,
        task_note=note,
        classes=None if classes is None else tuple(str(c) for c in classes),
        names=None if names is None else tuple(str(n) for n in names),
    )


def _onnx_facts(session: Any) -> ModelFacts:
    graph_input(session)  # one float matrix, or a clear refusal
    width = session.get_inputs()[0].shape[1]
    n_features = width if isinstance(width, int) else None
    outputs = session.get_outputs()
    labels = any(o.type not in FLOAT_INPUTS for o in outputs)  # a label or a ZipMap output
    named = any(o.name in PROBABILITY_OUTPUTS for o in outputs)
    if not (labels or named):
        output_name(session, "regression")
        return ModelFacts(n_features=n_features, task="regression")
    probabilities = next(o for o in outputs if o.name == output_name(session, "multiclass"))
    k = probabilities.shape[1]
    if not isinstance(k, int) and n_features is not None:
        k = _probe_width(session, probabilities.name, n_features)
    if not isinstance(k, int):
        return ModelFacts(n_features, None, "its number of classes is not fixed in the graph")
    task = "multiclass" if k > 2 else "binary"
    classes = tuple(str(i) for i in range(k)) if k > 2 else None
    return ModelFacts(n_features=n_features, task=task, classes=classes)


def _probe_width(session: Any, output: str, n_features: int) -> int:
    name, dtype = graph_input(session)
    try:
        (scores,) = session.run([output], {name: np.zeros((1, n_features), dtype=dtype)})
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise ArtifactError(
            f"ONNX Runtime cannot score a row of zeros with this graph ({first_line(exc)})."
        ) from exc
    return int(np.asarray(scores).shape[1])


def first_line(exc: BaseException) -> str:
    """An exception's first line, short enough for an error message."""
    return (str(exc).strip().splitlines() or [""])[0][:300]
