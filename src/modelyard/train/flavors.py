"""Model flavors: how each model family is saved and loaded, in safe formats.

A flavor turns a fitted model into bytes and back. LightGBM models are saved
as LightGBM's own text format; scikit-learn models through skops, whose loader
refuses any type not on an allow-list, so loading never runs arbitrary code.

``load(flavor, data, task)`` returns a scorer whose ``predict(X)`` follows the
output convention of ``modelyard.train.families`` on the encoded matrix:
binary → P(positive) of shape (n,), multiclass → probabilities (n, k),
regression → predictions (n,). ``predict_proba`` is the same method under the
name serving has always called.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from modelyard.errors import ArtifactError

FLAVORS = ("lightgbm", "sklearn")
TASKS = ("binary", "multiclass", "regression")

#: Module prefixes a skops file may reference; anything else is refused.
SKOPS_TRUSTED_PREFIXES = ("sklearn.", "numpy.", "scipy.")
#: Exact names trusted beyond those prefixes. ``functools.partial`` (histogram
#: boosting keeps one of ``sklearn.utils.validation.check_array``) only binds
#: arguments to a function that must itself pass this check to be loaded.
SKOPS_TRUSTED_NAMES = frozenset({"functools.partial"})


class Scorer(Protocol):
    """What serving and evaluation need from a loaded model."""

    task: str

    def predict(self, X: np.ndarray) -> np.ndarray: ...

    def predict_proba(self, X: np.ndarray) -> np.ndarray: ...


class LightGBMScorer:
    """A LightGBM booster scored single-threaded (one thread per server worker)."""

    def __init__(self, booster: Any, task: str = "binary") -> None:
        self.booster = booster
        self.task = task

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.booster.predict(X, num_threads=1))

    predict_proba = predict


class SklearnScorer:
    """A scikit-learn estimator: positive-class column, class probabilities or predictions.

    Like the LightGBM scorer it scores on one thread: scikit-learn's OpenMP
    loops (histogram boosting) otherwise start a thread team per call, which
    turns a one-row prediction of about a millisecond into tens of
    milliseconds on a busy machine. Limiting costs ~15 µs per call.
    """

    def __init__(self, estimator: Any, task: str = "binary") -> None:
        from threadpoolctl import ThreadpoolController  # comes with scikit-learn

        self.estimator = estimator
        self.task = task
        self._threads = ThreadpoolController()

    def predict(self, X: np.ndarray) -> np.ndarray:
        with self._threads.limit(limits=1):
            if self.task == "regression":
                return np.asarray(self.estimator.predict(X), dtype=np.float64)
            proba = np.asarray(self.estimator.predict_proba(X))
        return proba[:, 1] if self.task == "binary" else proba

    predict_proba = predict


def dump(flavor: str, model: Any) -> bytes:
    """Serialise a fitted model of ``flavor`` to bytes."""
    if flavor == "lightgbm":
        return str(model.model_to_string()).encode()
    if flavor == "sklearn":
        import skops.io

        return bytes(skops.io.dumps(model))
    raise _unknown(flavor)


def load(flavor: str, data: bytes, task: str = "binary") -> Scorer:
    """Rebuild a scorer for ``task`` from bytes written by ``dump``."""
    if task not in TASKS:
        raise ArtifactError(f"Cannot score task {task!r}; flavors score {', '.join(TASKS)}.")
    if flavor == "lightgbm":
        import lightgbm

        return LightGBMScorer(lightgbm.Booster(model_str=data.decode()), task)
    if flavor == "sklearn":
        return SklearnScorer(_load_skops(data), task)
    raise _unknown(flavor)


def _unknown(flavor: str) -> ArtifactError:
    return ArtifactError(f"Unknown model flavor '{flavor}'; known: {', '.join(FLAVORS)}.")


def _load_skops(data: bytes) -> Any:
    import skops.io

    untrusted = skops.io.get_untrusted_types(data=data)
    refused = [
        t
        for t in untrusted
        if not t.startswith(SKOPS_TRUSTED_PREFIXES) and t not in SKOPS_TRUSTED_NAMES
    ]
    if refused:
        raise ArtifactError(
            f"Refusing to load a scikit-learn model that references {refused}: only types from "
            f"{', '.join(SKOPS_TRUSTED_PREFIXES)} (and {', '.join(sorted(SKOPS_TRUSTED_NAMES))}) "
            "are allowed."
        )
    return skops.io.loads(data, trusted=untrusted)
