"""Robustness on real bundles: perturbed frames through the batch path, malformed records
through the serving path."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from modelyard.data.cleaning import Recipe
from modelyard.data.demo import DEMO_SPEC, make_loans
from modelyard.data.encoding import FeatureEncoder
from modelyard.errors import InvalidInputError
from modelyard.evaluate.metrics import classification_report
from modelyard.evaluate.robustness import Perturbation, robustness_report
from modelyard.train import flavors
from modelyard.train.bundle import ModelBundle
from modelyard.train.families import FAMILIES, TrainingData

FEATURES = ["age", "income", "credit_score", "debt_to_income", "purpose", "home_ownership"]
MALFORMED = {
    "malformed: wrong type in a number field",
    "malformed: wrong type in a category field",
    "malformed: unknown category",
    "malformed: missing field",
    "malformed: null in a non-nullable field",
    "malformed: NaN in a number field",
    "malformed: infinity in a number field",
    "malformed: not an object",
}


def _fit_bundle(train: pd.DataFrame, features: list[str], recipe: Recipe | None) -> ModelBundle:
    encoder = FeatureEncoder.fit(train, features)
    X, y = encoder.transform(train), train["default"].to_numpy()
    logistic = FAMILIES["logistic"]
    model = logistic.fit(
        TrainingData(X, y, X, y, encoder, "binary"), logistic.defaults("binary", 0)
    )
    bundle = ModelBundle.from_bytes(
        "sklearn", flavors.dump("sklearn", model), encoder, "binary", "default"
    )
    bundle.threshold = 0.2
    bundle.recipe = recipe
    return bundle


@pytest.fixture(scope="module")
def loans() -> tuple[pd.DataFrame, pd.DataFrame]:
    frame = make_loans(3_000, recent_share=0.0)
    return frame.iloc[:2_000], frame.iloc[2_000:].reset_index(drop=True)


@pytest.fixture(scope="module")
def bundle(loans: tuple[pd.DataFrame, pd.DataFrame]) -> ModelBundle:
    return _fit_bundle(loans[0], FEATURES, None)


@pytest.fixture(scope="module")
def results(
    bundle: ModelBundle, loans: tuple[pd.DataFrame, pd.DataFrame]
) -> dict[str, Perturbation]:
    train, test = loans
    found = robustness_report(
        bundle, test, test["default"].to_numpy(), metric="roc_auc", reference=train
    )
    return {r.name: r for r in found}


def test_every_perturbation_is_reported_once(results: dict[str, Perturbation]) -> None:
    kinds = [r.kind for r in results.values()]
    assert kinds.count("noise") == 3 and kinds.count("missing") == 2
    assert kinds.count("out_of_range") == 2
    assert {n for n, r in results.items() if r.kind == "malformed"} == MALFORMED


def test_metric_before_is_the_clean_metric(
    bundle: ModelBundle,
    loans: tuple[pd.DataFrame, pd.DataFrame],
    results: dict[str, Perturbation],
) -> None:
    test = loans[1]
    clean = classification_report(test["default"].to_numpy(), bundle.score_frame(test), 0.2)
    for r in results.values():
        if r.kind != "malformed":
            assert r.metric_before == clean["roc_auc"]
            assert r.metric_after is not None
            assert r.delta == pytest.approx(r.metric_after - r.metric_before)
            assert r.handled == r.rows == len(test) and not r.errors


def test_noise_flips_more_decisions_as_its_scale_grows(results: dict[str, Perturbation]) -> None:
    rates = [results[f"noise σ = {s} × std"].flip_rate for s in (0.05, 0.1, 0.25)]
    assert rates[0] is not None and rates[1] is not None and rates[2] is not None
    assert 0 < rates[0] < rates[1] < rates[2]


def test_more_missing_values_and_out_of_range_values_move_predictions(
    results: dict[str, Perturbation],
) -> None:
    few, many = results["missing 10% of values"], results["missing 30% of values"]
    assert few.flip_rate is not None and many.flip_rate is not None
    assert 0 < few.flip_rate < many.flip_rate
    for r in results.values():
        if r.kind == "out_of_range":
            assert r.flip_rate is not None and r.flip_rate > many.flip_rate


def test_malformed_records_are_rejected_or_scored_and_nothing_else(
    results: dict[str, Perturbation],
) -> None:
    for name in MALFORMED:
        r = results[name]
        assert r.errors == (), r.errors
        assert r.rejected + r.handled == r.rows == 100
        assert r.metric_before is None and r.metric_after is None


@pytest.mark.parametrize(
    "name",
    [
        "malformed: wrong type in a number field",
        "malformed: wrong type in a category field",
        "malformed: null in a non-nullable field",
        "malformed: infinity in a number field",
        "malformed: not an object",
    ],
)
def test_bad_values_are_rejected_with_a_message_naming_the_field(
    results: dict[str, Perturbation], name: str
) -> None:
    r = results[name]
    assert r.rejected == r.rows and r.handled == 0 and r.flip_rate is None
    assert r.example is not None
    if name != "malformed: not an object":
        assert any(f"field '{f}'" in r.example for f in FEATURES), r.example


def test_unknown_categories_and_nan_are_scored(results: dict[str, Perturbation]) -> None:
    for name in ("malformed: unknown category", "malformed: NaN in a number field"):
        r = results[name]
        assert r.handled == r.rows and r.rejected == 0
        assert r.flip_rate is not None and 0 <= r.flip_rate < 0.5


def test_a_missing_field_is_rejected_only_when_the_field_is_not_nullable(
    bundle: ModelBundle, results: dict[str, Perturbation]
) -> None:
    r = results["malformed: missing field"]
    required = [f.name for f in bundle.encoder.fields if not f.nullable]
    assert required and len(required) < len(FEATURES)
    assert r.rejected > 0 and r.handled > 0


def test_a_cleaning_recipe_in_the_serving_path_never_crashes(
    loans: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    train, test = loans
    steps = yaml.safe_load(DEMO_SPEC)["cleaning"]
    steps.append({"step": "impute", "columns": ["income", "credit_score"], "strategy": "median"})
    recipe = Recipe.from_spec_like(steps)
    cleaned = recipe.fit_transform(train)
    bundle = _fit_bundle(cleaned, [*FEATURES, "loan_amount"], recipe)
    found = robustness_report(
        bundle, test, test["default"].to_numpy(), metric="recall", reference=train, seed=3
    )
    assert [r.errors for r in found] == [() for _ in found]
    assert all(r.rejected + r.handled == r.rows for r in found)


# --------------------------------------------------------------------------- the contract


class _Wrapped:
    """A bundle whose serving path misbehaves in one chosen way."""

    def __init__(self, bundle: ModelBundle, fault: str) -> None:
        self.inner, self.fault = bundle, fault
        self.task, self.threshold, self.encoder = bundle.task, bundle.threshold, bundle.encoder

    @property
    def input_names(self) -> list[str]:
        return self.inner.input_names

    def encode_frame(self, frame: pd.DataFrame) -> np.ndarray:
        return self.inner.encode_frame(frame)

    def encode_records(self, records: list[Any]) -> np.ndarray:
        record = records[0]
        if self.fault == "crash" and isinstance(record, dict) and record.get("age") == "n/a":
            raise KeyError("age")
        if self.fault == "vague":
            try:
                return self.inner.encode_records(records)
            except InvalidInputError:
                raise InvalidInputError("Bad request.") from None
        return self.inner.encode_records(records)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        scores = self.inner.predict_proba(X)
        if self.fault == "nan" and len(X) == 1 and np.isnan(X).any():
            return np.full_like(scores, np.nan)
        return scores


@pytest.mark.parametrize(
    ("fault", "name", "fragment"),
    [
        ("crash", "malformed: wrong type in a number field", "KeyError"),
        ("vague", "malformed: wrong type in a number field", "without naming field"),
        ("nan", "malformed: unknown category", "scored [nan]"),
    ],
)
def test_a_misbehaving_serving_path_is_recorded_as_an_error_not_raised(
    bundle: ModelBundle,
    loans: tuple[pd.DataFrame, pd.DataFrame],
    fault: str,
    name: str,
    fragment: str,
) -> None:
    test = loans[1].head(300)
    found = robustness_report(
        _Wrapped(bundle, fault), test, test["default"], metric="roc_auc", malformed_rows=20
    )
    errors = next(r for r in found if r.name == name).errors
    assert errors and fragment in errors[0], errors


def test_regression_counts_a_flip_past_a_tenth_of_the_target_spread() -> None:
    rng = np.random.default_rng(5)
    frame = pd.DataFrame({"x": rng.normal(50, 10, 4_000)})
    encoder = FeatureEncoder.fit(frame, ["x"])

    class Identity:
        task, threshold = "regression", 0.5

        def __init__(self) -> None:
            self.encoder = encoder

        @property
        def input_names(self) -> list[str]:
            return ["x"]

        def encode_frame(self, f: pd.DataFrame) -> np.ndarray:
            return encoder.transform(f)

        def encode_records(self, records: list[Any]) -> np.ndarray:
            return encoder.encode_records(records)

        def predict_proba(self, X: np.ndarray) -> np.ndarray:
            return np.nan_to_num(X[:, 0], nan=50.0)

    found = robustness_report(Identity(), frame, frame["x"], metric="mae", missing_shares=())
    rates = {r.name: r.flip_rate for r in found}
    # noise σ = s·std moves a prediction past 0.1·std with probability P(|Z| > 0.1 / s)
    for scale, expected in ((0.05, 0.0455), (0.1, 0.3173), (0.25, 0.6892)):
        assert rates[f"noise σ = {scale:g} × std"] == pytest.approx(expected, abs=0.03)


def test_arguments_are_checked_before_any_work(
    bundle: ModelBundle, loans: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    test = loans[1]
    with pytest.raises(InvalidInputError, match=r"metric 'rmse'.*roc_auc"):
        robustness_report(bundle, test, test["default"], metric="rmse")
    with pytest.raises(InvalidInputError, match="one label per row"):
        robustness_report(bundle, test, test["default"].head(5), metric="roc_auc")
    with pytest.raises(InvalidInputError, match="missing_shares"):
        robustness_report(bundle, test, test["default"], metric="roc_auc", missing_shares=(1.5,))


def test_perturbation_to_dict_is_plain() -> None:
    p = Perturbation("n", "noise", 0.5, 0.4, -0.1, 0.2, 10, 0, 10, ("x",))
    assert p.to_dict()["errors"] == ["x"] and p.to_dict()["delta"] == -0.1
