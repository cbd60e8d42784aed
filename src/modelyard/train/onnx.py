"""ONNX export: a second, portable copy of a model, kept only if it predicts the same.

    export = export_onnx("lightgbm", booster, encoder, "binary", X_sample)
    if export is not None:                      # None: not convertible faithfully
        scorer = OnnxScorer(export.data, "binary")
        scorer.predict(X)                       # as flavors.load(...).predict(X)

ONNX is a safe format (a protobuf of operators, no code), and ONNX Runtime is
often faster for single rows. The graph takes the encoded matrix as float32
(NaN for a missing value or an unseen category, as ``FeatureEncoder`` makes
it) and gives what the native scorer gives: binary → P(positive) (n,),
multiclass → probabilities (n, k), regression → predictions (n,).

LightGBM boosters are converted with onnxmltools, scikit-learn estimators and
pipelines with skl2onnx (both without ZipMap, so probabilities are a tensor).
A converter may not support a model, or may support it unfaithfully (NaN
routing, native categories, float32 thresholds), so every export is checked:
ONNX Runtime and the native model score ``X_sample`` plus rows with each
feature set to NaN in turn, and an export that differs by more than
``MAX_ABS_DIFF`` anywhere is dropped. Nothing is ever served that was not
compared.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from modelyard.data.encoding import FeatureEncoder
from modelyard.errors import ArtifactError
from modelyard.train import flavors

OPSET = 15
"""The ai.onnx opset of exported graphs (onnxmltools' LightGBM converter stops at 15)."""
MAX_ABS_DIFF = 1e-4
"""The largest difference from the native scorer an export may show and still be kept."""
MAX_PARITY_ROWS = 5_000
NAN_PROBE_ROWS = 2_000
INPUT = "X"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OnnxExport:
    """A verified ONNX graph: its bytes, its largest difference from the native scorer
    over ``rows_checked`` rows, and its opset."""

    data: bytes
    max_abs_diff: float
    opset: int
    rows_checked: int = 0


class _Unfaithful(Exception):
    """The model cannot be exported so that it predicts what the native model does."""


def export_onnx(
    flavor: str,
    model: Any,
    encoder: FeatureEncoder,
    task: str,
    X_sample: np.ndarray,
    *,
    on_skip: Callable[[str], None] | None = None,
) -> OnnxExport | None:
    """The model as a verified ONNX graph, or None (the reason is logged and sent to
    ``on_skip``) if it cannot be converted or its predictions differ."""
    try:
        return _export(flavor, model, encoder, task, np.asarray(X_sample, dtype=np.float64))
    except _Unfaithful as exc:
        reason = f"No ONNX export for this {flavor} {task} model: {exc}"
        log.info(reason)
        if on_skip is not None:
            on_skip(reason)
        return None


def _export(
    flavor: str, model: Any, encoder: FeatureEncoder, task: str, X_sample: np.ndarray
) -> OnnxExport:
    n_features = len(encoder.fields)
    if X_sample.ndim != 2 or X_sample.shape[1] != n_features or len(X_sample) == 0:
        raise _Unfaithful(
            f"X_sample must be a non-empty encoded matrix with {n_features} columns; "
            f"got shape {X_sample.shape}"
        )
    proto = _convert(flavor, model, task, n_features)
    data = proto.SerializeToString()
    rows = parity_rows(X_sample)
    try:
        expected = _native(flavor, model, task).predict(rows)
    except ValueError as exc:
        raise _Unfaithful(f"the native model cannot score the check rows ({exc})") from exc
    try:
        got = OnnxScorer(data, task).predict(rows)
    except (ArtifactError, RuntimeError, ValueError) as exc:
        raise _Unfaithful(f"ONNX Runtime cannot run the converted graph ({exc})") from exc
    diff = _max_abs_diff(expected, got)
    if not diff <= MAX_ABS_DIFF:
        raise _Unfaithful(
            f"its predictions differ from the native model's by up to {diff:.3g} "
            f"(allowed {MAX_ABS_DIFF:g}) on {len(rows)} check rows"
        )
    return OnnxExport(data, diff, OPSET, len(rows))


def parity_rows(X_sample: np.ndarray) -> np.ndarray:
    """The rows an export is checked on: up to ``MAX_PARITY_ROWS`` sample rows, then
    copies of the first few with each column set to NaN in turn (a missing value, or
    an unseen category), then a row of NaN only."""
    sample = X_sample[:MAX_PARITY_ROWS]
    n_features = sample.shape[1]
    base = sample[: max(1, min(20, NAN_PROBE_ROWS // n_features))]
    probes = np.repeat(base, n_features, axis=0)
    column = np.tile(np.arange(n_features), len(base))
    probes[np.arange(len(probes)), column] = np.nan
    return np.vstack([sample, probes, np.full((1, n_features), np.nan)])


def _max_abs_diff(expected: np.ndarray, got: np.ndarray) -> float:
    if expected.shape != got.shape:
        raise _Unfaithful(
            f"its output has shape {got.shape}; the native model's has {expected.shape}"
        )
    if not np.array_equal(np.isnan(expected), np.isnan(got)):
        return float("inf")
    both = ~np.isnan(expected)
    return float(np.max(np.abs(expected[both] - got[both]), initial=0.0))


def _native(flavor: str, model: Any, task: str) -> flavors.Scorer:
    if flavor == "lightgbm":
        return flavors.LightGBMScorer(model, task)
    return flavors.SklearnScorer(model, task)


# ---------------------------------------------------------------------- conversion


def _convert(flavor: str, model: Any, task: str, n_features: int) -> Any:
    """The ONNX ModelProto; converters raise anything, so every failure is a reason."""
    convert = {"lightgbm": _convert_lightgbm, "sklearn": _convert_sklearn}.get(flavor)
    if convert is None:
        raise _Unfaithful(f"there is no ONNX converter for flavor '{flavor}'")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # converter chatter, not the user's concern
            return convert(model, task, n_features)
    except Exception as exc:
        first_line = (str(exc).strip().splitlines() or [""])[0][:300]
        raise _Unfaithful(f"the converter refused it ({type(exc).__name__}: {first_line})") from exc


def _convert_lightgbm(booster: Any, task: str, n_features: int) -> Any:
    from onnxmltools.convert import convert_lightgbm
    from onnxmltools.convert.common.data_types import FloatTensorType

    return convert_lightgbm(
        booster,  # a Booster; onnxmltools wraps it to read its objective and classes
        initial_types=[(INPUT, FloatTensorType([None, n_features]))],
        zipmap=False,
        target_opset=OPSET,
    )


def _convert_sklearn(model: Any, task: str, n_features: int) -> Any:
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    options = {id(model): {"zipmap": False}} if task != "regression" else None
    return to_onnx(
        model,
        initial_types=[(INPUT, FloatTensorType([None, n_features]))],
        options=options,
        target_opset=OPSET,
    )


# ---------------------------------------------------------------------- scoring


class OnnxScorer:
    """An ONNX graph scored by ONNX Runtime on one thread, with the flavors' output
    convention: binary → P(positive), multiclass → probabilities, regression → values."""

    def __init__(self, data: bytes, task: str = "binary") -> None:
        import onnxruntime as ort

        if task not in flavors.TASKS:
            raise ArtifactError(f"Cannot score task {task!r}; ONNX scores {flavors.TASKS}.")
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # the converters' label outputs trip shape warnings
        try:
            self.session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ArtifactError(f"ONNX Runtime cannot load this graph: {exc}") from exc
        self.task = task
        self._output = _output_name(self.session, task)

    def predict(self, X: np.ndarray) -> np.ndarray:
        (out,) = self.session.run(
            [self._output], {INPUT: np.ascontiguousarray(X, dtype=np.float32)}
        )
        scores = np.asarray(out, dtype=np.float64)
        if self.task == "regression":
            return scores.reshape(len(scores))
        return scores[:, 1] if self.task == "binary" else scores

    predict_proba = predict


def _output_name(session: Any, task: str) -> str:
    names = [o.name for o in session.get_outputs()]
    if task == "regression":
        return str(names[0])
    if "probabilities" not in names:
        raise ArtifactError(
            f"This ONNX graph has outputs {names}, not 'probabilities'; "
            "export classifiers with export_onnx()."
        )
    return "probabilities"
