"""Model flavors: how each model family is saved and loaded, in safe formats.

A flavor turns a fitted model into bytes and back. LightGBM models are saved
as LightGBM's own text format; scikit-learn models through skops, whose loader
refuses any type not on an allow-list, so loading never runs arbitrary code.
Both expose ``predict_proba(X) -> P(positive class)`` on the encoded matrix.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from modelyard.errors import ArtifactError

#: Module prefixes a skops file may reference; anything else is refused.
SKOPS_TRUSTED_PREFIXES = ("sklearn.", "numpy.", "scipy.")


class Scorer(Protocol):
    """What serving and evaluation need from a loaded model."""

    def predict_proba(self, X: np.ndarray) -> np.ndarray: ...


class LightGBMScorer:
    """A LightGBM booster scored single-threaded (one thread per server worker)."""

    def __init__(self, booster: Any) -> None:
        self.booster = booster

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.booster.predict(X, num_threads=1))


class SklearnScorer:
    """A scikit-learn binary classifier; returns the positive-class column."""

    def __init__(self, estimator: Any) -> None:
        self.estimator = estimator

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.estimator.predict_proba(X)[:, 1])


def dump(flavor: str, model: Any) -> bytes:
    """Serialise a fitted model of ``flavor`` to bytes."""
    if flavor == "lightgbm":
        return str(model.model_to_string()).encode()
    if flavor == "sklearn":
        import skops.io

        return bytes(skops.io.dumps(model))
    raise ArtifactError(f"Unknown model flavor '{flavor}'; known: lightgbm, sklearn.")


def load(flavor: str, data: bytes) -> Scorer:
    """Rebuild a scorer from bytes written by ``dump``."""
    if flavor == "lightgbm":
        import lightgbm

        return LightGBMScorer(lightgbm.Booster(model_str=data.decode()))
    if flavor == "sklearn":
        return SklearnScorer(_load_skops(data))
    raise ArtifactError(f"Unknown model flavor '{flavor}'; known: lightgbm, sklearn.")


def _load_skops(data: bytes) -> Any:
    import skops.io

    untrusted = skops.io.get_untrusted_types(data=data)
    refused = [t for t in untrusted if not t.startswith(SKOPS_TRUSTED_PREFIXES)]
    if refused:
        raise ArtifactError(
            f"Refusing to load a scikit-learn model that references {refused}: only types from "
            f"{', '.join(SKOPS_TRUSTED_PREFIXES)} are allowed."
        )
    return skops.io.loads(data, trusted=untrusted)
