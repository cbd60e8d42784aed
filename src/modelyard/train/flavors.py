"""Model flavors: how each model family is saved and loaded, in safe formats.

A flavor turns a fitted model into bytes and back. LightGBM models are saved
as LightGBM's own text format and XGBoost models as XGBoost's JSON (or UBJSON)
format; scikit-learn models go through skops, whose loader refuses any type not
on an allow-list, so loading never runs arbitrary code; ``onnx`` models are an
ONNX graph (a protobuf of operators, no code) scored by ONNX Runtime. XGBoost
is an optional extra (``pip install 'modelyard[xgboost]'``), imported only when
an XGBoost model is loaded.

``load(flavor, data, task)`` returns a scorer whose ``predict(X)`` follows the
output convention of ``modelyard.train.families`` on the encoded matrix:
binary → P(positive) of shape (n,), multiclass → probabilities (n, k),
regression → predictions (n,). ``predict_proba`` is the same method under the
name serving has always called. ``load_model(flavor, data)`` gives the flavor's
own model object (a ``lightgbm.Booster``, an estimator, an ``xgboost.Booster``,
an ONNX Runtime session) for code that inspects it, and ``scorer`` wraps an
in-memory model of a native flavor the way ``load`` would.
"""

from __future__ import annotations

import warnings
from typing import Any, Protocol

import numpy as np

from modelyard.errors import ArtifactError

FLAVORS = ("lightgbm", "sklearn", "xgboost", "onnx")
TASKS = ("binary", "multiclass", "regression")

#: Module prefixes a skops file may reference; anything else is refused.
SKOPS_TRUSTED_PREFIXES = ("sklearn.", "numpy.", "scipy.")
#: Exact names trusted beyond those prefixes. ``functools.partial`` (histogram
#: boosting keeps one of ``sklearn.utils.validation.check_array``) only binds
#: arguments to a function that must itself pass this check to be loaded.
SKOPS_TRUSTED_NAMES = frozenset({"functools.partial"})
XGBOOST_INSTALL = "pip install 'modelyard[xgboost]'"


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
        # Fitted on a DataFrame (an imported model): it warns on every matrix it scores.
        self._named = hasattr(estimator, "feature_names_in_")

    def predict(self, X: np.ndarray) -> np.ndarray:
        with self._threads.limit(limits=1), warnings.catch_warnings():
            if self._named:
                warnings.filterwarnings("ignore", "X does not have valid feature names")
            if self.task == "regression":
                return np.asarray(self.estimator.predict(X), dtype=np.float64)
            proba = np.asarray(self.estimator.predict_proba(X))
        return proba[:, 1] if self.task == "binary" else proba

    predict_proba = predict


class XGBoostScorer:
    """An XGBoost booster scored in place on one thread; NaN is a missing value.

    The booster's objective sets the output: ``binary:logistic`` gives
    P(positive) (n,), ``multi:softprob`` probabilities (n, k), a regression
    objective its predictions (n,).
    """

    def __init__(self, booster: Any, task: str = "binary") -> None:
        booster.set_param({"nthread": 1})
        self.booster = booster
        self.task = task

    def predict(self, X: np.ndarray) -> np.ndarray:
        scores = self.booster.inplace_predict(
            np.ascontiguousarray(X, dtype=np.float64), missing=np.nan
        )
        return np.asarray(scores, dtype=np.float64)

    predict_proba = predict


def dump(flavor: str, model: Any) -> bytes:
    """Serialise a fitted model of ``flavor`` to bytes."""
    if flavor == "lightgbm":
        return str(model.model_to_string()).encode()
    if flavor == "sklearn":
        import skops.io

        return bytes(skops.io.dumps(model))
    if flavor == "xgboost":
        return bytes(model.save_raw(raw_format="json"))
    if flavor == "onnx":  # an onnx.ModelProto, or its bytes already
        return bytes(model.SerializeToString() if hasattr(model, "SerializeToString") else model)
    raise _unknown(flavor)


def load(flavor: str, data: bytes, task: str = "binary") -> Scorer:
    """Rebuild a scorer for ``task`` from bytes written by ``dump``."""
    check_task(task)
    if flavor == "onnx":
        from modelyard.train.onnx import OnnxScorer  # onnx imports this module

        return OnnxScorer(data, task)
    return scorer(flavor, load_model(flavor, data), task)


def scorer(flavor: str, model: Any, task: str = "binary") -> Scorer:
    """A scorer over an in-memory model of a native flavor (not ``onnx``: use ``load``)."""
    check_task(task)
    kinds: dict[str, type[LightGBMScorer | SklearnScorer | XGBoostScorer]] = {
        "lightgbm": LightGBMScorer,
        "sklearn": SklearnScorer,
        "xgboost": XGBoostScorer,
    }
    if flavor == "onnx":
        raise ArtifactError("An ONNX model is scored from its bytes: flavors.load('onnx', data).")
    if flavor not in kinds:
        raise _unknown(flavor)
    return kinds[flavor](model, task)


def load_model(flavor: str, data: bytes) -> Any:
    """The flavor's own model object, through its safe loader; unreadable bytes are an
    ``ArtifactError`` that names the flavor."""
    if flavor == "lightgbm":
        return _load_lightgbm(data)
    if flavor == "sklearn":
        return _load_skops(data)
    if flavor == "xgboost":
        return _load_xgboost(data)
    if flavor == "onnx":
        from modelyard.train.onnx import inference_session

        return inference_session(data)
    raise _unknown(flavor)


def check_task(task: str) -> None:
    if task not in TASKS:
        raise ArtifactError(f"Cannot score task {task!r}; flavors score {', '.join(TASKS)}.")


def _unknown(flavor: str) -> ArtifactError:
    return ArtifactError(f"Unknown model flavor '{flavor}'; known: {', '.join(FLAVORS)}.")


def _load_lightgbm(data: bytes) -> Any:
    import lightgbm

    try:
        return lightgbm.Booster(model_str=data.decode())
    except (UnicodeDecodeError, lightgbm.basic.LightGBMError) as exc:
        raise ArtifactError(
            f"These bytes are not a LightGBM text model ({_first_line(exc)}). Save it with "
            "booster.save_model('model.txt')."
        ) from exc


def _load_xgboost(data: bytes) -> Any:
    try:
        import xgboost
    except ImportError as exc:
        raise ArtifactError(
            f"Loading an XGBoost model needs the xgboost package: {XGBOOST_INSTALL}."
        ) from exc
    booster = xgboost.Booster()
    try:
        booster.load_model(bytearray(data))
    except xgboost.core.XGBoostError as exc:
        raise ArtifactError(
            f"These bytes are not an XGBoost model ({_first_line(exc)}). Save it with "
            "booster.save_model('model.json')."
        ) from exc
    return booster


def _load_skops(data: bytes) -> Any:
    import skops.io

    try:
        untrusted = skops.io.get_untrusted_types(data=data)
    except Exception as exc:  # zipfile, json and skops errors alike: not a skops file
        raise ArtifactError(
            f"These bytes are not a skops file ({type(exc).__name__}: {_first_line(exc)}). "
            "Save scikit-learn models with skops.io.dump(model, 'model.skops')."
        ) from exc
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
    try:
        return skops.io.loads(data, trusted=untrusted)
    except Exception as exc:  # a skops file whose objects cannot be rebuilt here
        raise ArtifactError(
            f"This skops file cannot be loaded ({type(exc).__name__}: {_first_line(exc)}); "
            "save it again with the installed scikit-learn."
        ) from exc


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:200]
