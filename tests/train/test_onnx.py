"""ONNX export: kept only when ONNX Runtime predicts what the native model predicts,
including rows with missing numbers and categories never seen in training."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from modelyard.data.demo import make_loans
from modelyard.data.encoding import FeatureEncoder
from modelyard.errors import ArtifactError
from modelyard.train import flavors, onnx
from modelyard.train.families import FAMILIES, TrainingData
from modelyard.train.onnx import MAX_ABS_DIFF, OnnxScorer, export_onnx, parity_rows

PARITY = 1e-5
FEATURES = ["age", "income", "loan_amount", "credit_score", "home_ownership", "purpose", "region"]


@pytest.fixture(scope="module")
def loans() -> tuple[FeatureEncoder, pd.DataFrame, pd.DataFrame]:
    frame = make_loans(3_000, recent_share=0.0, seed=4)
    train, test = frame.iloc[:2_400], frame.iloc[2_400:].copy()
    test.loc[test.index[::7], "region"] = "atlantis"  # unseen in training → NaN
    test.loc[test.index[1::5], "income"] = None  # missing → NaN
    test.loc[test.index[2::9], "purpose"] = None
    return FeatureEncoder.fit(train, FEATURES), train, test


def _data(encoder: FeatureEncoder, frame: pd.DataFrame, y: np.ndarray, task: str) -> TrainingData:
    X = encoder.transform(frame)
    cut = int(len(X) * 0.8)
    k = int(y.max()) + 1 if task == "multiclass" else 2
    return TrainingData(X[:cut], y[:cut], X[cut:], y[cut:], encoder, task, n_classes=k)


def _fit(family: str, task: str, loans: Any) -> tuple[Any, np.ndarray]:
    encoder, train, test = loans
    targets = {
        "binary": train["default"].to_numpy(),
        "multiclass": pd.qcut(train["interest_rate"], 3, labels=False).to_numpy(),
        "regression": train["loan_amount"].to_numpy() / 1_000,
    }
    model = FAMILIES[family].fit(
        _data(encoder, train, targets[task], task),
        FAMILIES[family].defaults(task, 1),
    )
    return model, encoder.transform(test)


def _native(flavor: str, model: Any, task: str) -> flavors.Scorer:
    return flavors.load(flavor, flavors.dump(flavor, model), task)


@pytest.mark.parametrize(
    ("family", "task"),
    [
        ("lightgbm", "binary"),
        ("logistic", "binary"),
        ("logistic", "multiclass"),
        ("lightgbm", "multiclass"),
        ("linear", "regression"),
    ],
)
def test_export_predicts_what_the_native_model_predicts(family: str, task: str, loans: Any) -> None:
    model, X = _fit(family, task, loans)
    flavor = FAMILIES[family].flavor
    assert np.isnan(X).any(axis=0).sum() >= 3  # missing values and unseen categories
    exported = export_onnx(flavor, model, loans[0], task, X)
    assert exported is not None
    assert exported.max_abs_diff <= PARITY
    assert exported.opset == onnx.OPSET
    assert exported.rows_checked > len(X)  # the sample plus the NaN probes
    expected = _native(flavor, model, task).predict(X)
    got = OnnxScorer(exported.data, task).predict(X)
    assert got.shape == expected.shape == ((len(X), 3) if task == "multiclass" else (len(X),))
    np.testing.assert_allclose(got, expected, rtol=0, atol=PARITY)
    assert np.array_equal(OnnxScorer(exported.data, task).predict_proba(X[:1]), got[:1])


def test_single_rows_score_like_batches(loans: Any) -> None:
    model, X = _fit("lightgbm", "binary", loans)
    exported = export_onnx("lightgbm", model, loans[0], "binary", X)
    assert exported is not None
    scorer = OnnxScorer(exported.data, "binary")
    singles = np.concatenate([scorer.predict(X[i : i + 1]) for i in range(20)])
    np.testing.assert_array_equal(singles, scorer.predict(X[:20]))


def test_an_export_that_predicts_differently_is_dropped(
    loans: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A converter that gets a model wrong must never reach serving."""
    model, X = _fit("logistic", "binary", loans)
    other = FAMILIES["logistic"].fit(
        _data(loans[0], loans[1], loans[1]["default"].to_numpy(), "binary"),
        {**FAMILIES["logistic"].defaults("binary", 1), "C": 1e-3},
    )
    convert_other = onnx._convert_sklearn
    monkeypatch.setattr(onnx, "_convert_sklearn", lambda _m, t, n: convert_other(other, t, n))
    reasons: list[str] = []
    assert export_onnx("sklearn", model, loans[0], "binary", X, on_skip=reasons.append) is None
    (reason,) = reasons
    assert "predictions differ from the native model's by up to" in reason
    assert f"allowed {MAX_ABS_DIFF:g}" in reason


def test_models_without_a_converter_give_none_and_say_why(loans: Any) -> None:
    model, X = _fit("majority", "binary", loans)
    reasons: list[str] = []
    assert export_onnx("sklearn", model, loans[0], "binary", X, on_skip=reasons.append) is None
    assert "the converter refused it" in reasons[0] and "DummyClassifier" in reasons[0]
    assert export_onnx("pytorch", model, loans[0], "binary", X, on_skip=reasons.append) is None
    assert "no ONNX converter for flavor 'pytorch'" in reasons[1]
    assert (
        export_onnx("sklearn", model, loans[0], "binary", X[:, :2], on_skip=reasons.append) is None
    )
    assert f"with {len(FEATURES)} columns; got shape ({len(X)}, 2)" in reasons[2]


def test_parity_rows_probe_every_column_with_nan() -> None:
    sample = np.arange(12, dtype=np.float64).reshape(4, 3)
    rows = parity_rows(sample)
    np.testing.assert_array_equal(rows[:4], sample)
    probes = rows[4:-1]
    assert len(probes) == 4 * 3
    assert (np.isnan(probes).sum(axis=1) == 1).all()
    assert set(np.argwhere(np.isnan(probes))[:, 1]) == {0, 1, 2}
    assert np.isnan(rows[-1]).all()


def test_scorer_refuses_what_it_cannot_load() -> None:
    with pytest.raises(ArtifactError, match="ONNX Runtime cannot load"):
        OnnxScorer(b"not a graph", "binary")
    with pytest.raises(ArtifactError, match="Cannot score task 'ranking'"):
        OnnxScorer(b"", "ranking")
