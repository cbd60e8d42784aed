"""Class imbalance (R2.6): class weights and random over- / under-sampling.

The choice is plain data, an ``ImbalancePolicy``, so a run records it: it
changes the training distribution, and a model trained on resampled rows
predicts different probabilities than one trained on the data as it is.

Apply it to the training rows only. Validation and test rows must keep the
real class distribution, or the metrics describe data the model will never
see. ``resample`` is pure — it returns new objects and never modifies its
inputs — so the caller decides which rows it touches.

``target_ratio`` is the size of the smallest class relative to the largest
after resampling (1.0, the default, balances the classes):

- oversample: every smaller class gets extra copies of its own rows, drawn at
  random with replacement, until it has ``ceil(target_ratio × largest)`` rows;
- undersample: every larger class keeps a random subset (without replacement)
  of ``floor(smallest / target_ratio)`` rows.

Rows come back in their original order (an oversampled copy follows its
original), so a time-ordered training set stays ordered.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal, TypeVar, get_args

import numpy as np
import pandas as pd

from modelyard.errors import DataError, InvalidInputError

Method = Literal["none", "class_weight", "oversample", "undersample"]
METHODS: tuple[str, ...] = get_args(Method)
SCHEMES = ("balanced",)

Rows = TypeVar("Rows", pd.DataFrame, np.ndarray)
Labels = TypeVar("Labels", pd.Series, np.ndarray)


@dataclass(frozen=True)
class ImbalancePolicy:
    """How to treat class imbalance in training: recorded with the run as ``to_dict()``."""

    method: Method = "none"
    target_ratio: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise InvalidInputError(
                f"Imbalance method must be one of {METHODS}; got {self.method!r}."
            )
        if self.target_ratio is None:
            return
        if self.method not in ("oversample", "undersample"):
            raise InvalidInputError(
                f"target_ratio applies to oversample and undersample only; method "
                f"{self.method!r} would ignore it. Leave it unset."
            )
        ratio = self.target_ratio
        if isinstance(ratio, bool) or not isinstance(ratio, int | float) or not 0 < ratio <= 1:
            raise InvalidInputError(
                "target_ratio (smallest class / largest class after resampling) must be a "
                f"number in (0, 1]; got {ratio!r}."
            )

    @property
    def ratio(self) -> float:
        return 1.0 if self.target_ratio is None else float(self.target_ratio)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImbalancePolicy:
        return cls(**data)


def class_weights(y: Any, scheme: str = "balanced") -> dict[Any, float]:
    """A weight per class; ``"balanced"`` is ``rows / (classes × rows of the class)``.

    Equals scikit-learn's ``compute_class_weight("balanced", ...)``.
    """
    from sklearn.utils.class_weight import compute_class_weight

    if scheme not in SCHEMES:
        raise InvalidInputError(f"Class-weight scheme must be one of {SCHEMES}; got {scheme!r}.")
    codes, classes = _classes(y)
    weights = compute_class_weight(scheme, classes=np.arange(len(classes)), y=codes)
    return {_plain(c): float(w) for c, w in zip(classes, weights, strict=True)}


def sample_weights(y: Any, scheme: str = "balanced") -> np.ndarray:
    """Each row's class weight, for models that take ``sample_weight`` in ``fit``."""
    weights = class_weights(y, scheme)
    codes, classes = _classes(y)
    per_class = np.array([weights[_plain(c)] for c in classes])
    out: np.ndarray = per_class[codes]
    return out


def resample(X: Rows, y: Labels, policy: ImbalancePolicy) -> tuple[Rows, Labels, dict[str, Any]]:
    """Apply ``policy`` to training rows; returns new ``X``, ``y`` and a report.

    The report (plain data, ready for a run's record) holds the policy and the
    class counts and shares before and after; with ``class_weight`` it also
    holds the weights, and the rows are returned unchanged.
    """
    if len(X) != len(y):
        raise DataError(f"X has {len(X)} rows but y has {len(y)}; give one label per row.")
    codes, classes = _classes(y)
    report: dict[str, Any] = {"policy": policy.to_dict(), "before": _distribution(codes, classes)}
    if policy.method in ("none", "class_weight"):
        if policy.method == "class_weight":
            report["class_weights"] = {str(k): v for k, v in class_weights(y).items()}
        report["after"] = report["before"]
        return X, y, report
    rows = _select(codes, policy)
    new_x = X.iloc[rows] if isinstance(X, pd.DataFrame) else X[rows]
    new_y = y.iloc[rows] if isinstance(y, pd.Series) else y[rows]
    report["after"] = _distribution(codes[rows], classes)
    return new_x, new_y, report


def _select(codes: np.ndarray, policy: ImbalancePolicy) -> np.ndarray:
    rng = np.random.default_rng(policy.seed)
    counts = np.bincount(codes)
    if policy.method == "oversample":
        target = math.ceil(policy.ratio * counts.max())
    else:
        target = max(1, math.floor(counts.min() / policy.ratio))
    chosen = []
    for k, count in enumerate(counts):
        members = np.nonzero(codes == k)[0]
        if policy.method == "oversample":
            extra = rng.choice(members, max(0, target - count), replace=True)
            chosen.append(np.concatenate([members, extra]))
        else:
            chosen.append(rng.choice(members, min(count, target), replace=False))
    return np.sort(np.concatenate(chosen), kind="stable")


def _classes(y: Any) -> tuple[np.ndarray, np.ndarray]:
    values = np.asarray(y, dtype=object)
    if values.ndim != 1 or len(values) == 0:
        raise DataError(f"Labels must be a non-empty 1-D sequence; got shape {values.shape}.")
    missing = pd.isna(values)
    if missing.any():
        raise DataError(
            f"{int(missing.sum())} row(s) have no label (e.g. row {int(np.argmax(missing))}); "
            "drop them before weighting or resampling."
        )
    try:
        codes, classes = pd.factorize(values, sort=True)
    except TypeError:
        codes, classes = pd.factorize(values)
    return np.asarray(codes, dtype=np.int64), np.asarray(classes, dtype=object)


def _distribution(codes: np.ndarray, classes: np.ndarray) -> dict[str, Any]:
    counts = np.bincount(codes, minlength=len(classes))
    total = int(counts.sum())
    names = [str(_plain(c)) for c in classes]
    return {
        "rows": total,
        "counts": {n: int(c) for n, c in zip(names, counts, strict=True)},
        "shares": {n: float(c) / total for n, c in zip(names, counts, strict=True)},
    }


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
