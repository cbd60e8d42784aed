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

LightGBM and XGBoost boosters are converted with onnxmltools, scikit-learn
estimators and pipelines with skl2onnx (without ZipMap, so probabilities are a
tensor).
A converter may not support a model, or may support it unfaithfully (NaN
routing, native categories, float32 thresholds), so every export is checked:
ONNX Runtime and the native model score ``X_sample`` plus rows with each
feature set to NaN in turn, and an export that differs by more than
``MAX_ABS_DIFF`` anywhere is dropped. Nothing is ever served that was not
compared.

``OnnxScorer`` also scores graphs made elsewhere (``modelyard models import``):
it feeds the graph's single input, as float32 or float64 as the graph declares,
and reads a ``probabilities`` (or ``output_probability``) tensor, else the one
2-D float output, for classifiers, and the first float output for regression.
A classifier whose probabilities come out of a ZipMap (a list of dicts) is
refused with how to re-export it.
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
_FLOAT32_MAX = float(np.finfo(np.float32).max)

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
        raise _Unfaithful(
            f"the native model cannot score the check rows ({_first_line(exc)})"
        ) from exc
    try:
        got = OnnxScorer(data, task).predict(rows)
    except (ArtifactError, RuntimeError, ValueError) as exc:
        raise _Unfaithful(
            f"ONNX Runtime cannot run the converted graph ({_first_line(exc)})"
        ) from exc
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


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:300]


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
    return flavors.scorer(flavor, model, task)


# ---------------------------------------------------------------------- conversion


def _convert(flavor: str, model: Any, task: str, n_features: int) -> Any:
    """The ONNX ModelProto; converters raise anything, so every failure is a reason."""
    converters = {
        "lightgbm": _convert_lightgbm,
        "sklearn": _convert_sklearn,
        "xgboost": _convert_xgboost,
    }
    convert = converters.get(flavor)
    if convert is None:
        raise _Unfaithful(f"there is no ONNX converter for flavor '{flavor}'")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # converter chatter, not the user's concern
            return convert(model, task, n_features)
    except Exception as exc:
        raise _Unfaithful(
            f"the converter refused it ({type(exc).__name__}: {_first_line(exc)})"
        ) from exc


def _convert_lightgbm(booster: Any, task: str, n_features: int) -> Any:
    from onnxmltools.convert import convert_lightgbm
    from onnxmltools.convert.common.data_types import FloatTensorType

    return convert_lightgbm(
        booster,  # a Booster; onnxmltools wraps it to read its objective and classes
        initial_types=[(INPUT, FloatTensorType([None, n_features]))],
        zipmap=False,
        target_opset=OPSET,
    )


def _convert_xgboost(booster: Any, task: str, n_features: int) -> Any:
    from onnxmltools.convert import convert_xgboost
    from onnxmltools.convert.common.data_types import FloatTensorType

    unnamed = booster.copy()
    unnamed.feature_names = None  # the converter reads only 'f0', 'f1', ...; the graph takes X
    return convert_xgboost(
        unnamed,  # a Booster; its objective says classifier or regressor (no ZipMap either way)
        initial_types=[(INPUT, FloatTensorType([None, n_features]))],
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


FLOAT_INPUTS: dict[str, type[np.floating[Any]]] = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
}
PROBABILITY_OUTPUTS = ("probabilities", "output_probability")


def inference_session(data: bytes) -> Any:
    """An ONNX Runtime session on one thread; a graph it cannot load is an ArtifactError."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # the converters' label outputs trip shape warnings
    try:
        return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise ArtifactError(f"ONNX Runtime cannot load this graph: {exc}") from exc


class OnnxScorer:
    """An ONNX graph scored by ONNX Runtime on one thread, with the flavors' output
    convention: binary → P(positive), multiclass → probabilities, regression → values."""

    def __init__(self, data: bytes, task: str = "binary") -> None:
        if task not in flavors.TASKS:
            raise ArtifactError(f"Cannot score task {task!r}; ONNX scores {flavors.TASKS}.")
        self.session = inference_session(data)
        self.task = task
        self._input, self._dtype = graph_input(self.session)
        self._output = output_name(self.session, task)

    def predict(self, X: np.ndarray) -> np.ndarray:
        if self._dtype == np.float32:  # beyond float32's range a value would become inf
            X = np.clip(X, -_FLOAT32_MAX, _FLOAT32_MAX)
        (out,) = self.session.run(
            [self._output], {self._input: np.ascontiguousarray(X, dtype=self._dtype)}
        )
        scores = np.asarray(out, dtype=np.float64)
        if self.task == "regression":
            return scores.reshape(len(scores))
        if self.task == "multiclass":
            return scores
        if scores.ndim == 2 and scores.shape[1] in (1, 2):
            return scores[:, -1]
        raise ArtifactError(
            f"This ONNX graph gives {scores.shape[1:]} probabilities per row, not two: "
            "score it as a multiclass model."
        )

    predict_proba = predict


def graph_input(session: Any) -> tuple[str, type[np.floating[Any]]]:
    """The name and dtype of the graph's one input: a float matrix (rows × features)."""
    inputs = session.get_inputs()
    described = [f"{i.name} {i.type} {i.shape}" for i in inputs]
    if len(inputs) != 1 or inputs[0].type not in FLOAT_INPUTS or len(inputs[0].shape) != 2:
        raise ArtifactError(
            f"This ONNX graph takes {described}; modelyard feeds one float matrix of rows × "
            "features. Export it with a single input such as FloatTensorType([None, n_features])."
        )
    return str(inputs[0].name), FLOAT_INPUTS[inputs[0].type]


def output_name(session: Any, task: str) -> str:
    """The output holding the scores: for classifiers a probability tensor (a
    ``probabilities``/``output_probability`` one first, else the one 2-D float output),
    for regression the first float tensor."""
    outputs = session.get_outputs()
    floats = [o for o in outputs if o.type in FLOAT_INPUTS]
    if task == "regression":
        if floats:
            return str(floats[0].name)
    else:
        matrices = [o for o in floats if len(o.shape) == 2]
        named = [o for o in matrices if o.name in PROBABILITY_OUTPUTS]
        if named or len(matrices) == 1:
            return str((named or matrices)[0].name)
        if any(o.type.startswith("seq(map") for o in outputs):
            raise ArtifactError(
                "This ONNX classifier gives its probabilities as a ZipMap (a list of dicts). "
                "Export it again without one: skl2onnx options={id(model): {'zipmap': False}}, "
                "onnxmltools zipmap=False."
            )
    listed = [f"{o.name} {o.type}" for o in outputs]
    wanted = "a float output" if task == "regression" else "a 2-D 'probabilities' float tensor"
    raise ArtifactError(
        f"This ONNX graph has outputs {listed}, none of them {wanted} for a {task} model; "
        "export classifiers with export_onnx() or with probabilities as a tensor."
    )
