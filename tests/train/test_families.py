"""The contract every model family keeps, run over every family and every task it learns."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from tabular import make_tabular

from modelyard.data.encoding import FeatureEncoder
from modelyard.errors import InvalidInputError
from modelyard.spec import MODEL_FAMILIES
from modelyard.train import flavors
from modelyard.train.families import (
    FAMILIES,
    Choice,
    CVData,
    Family,
    Float,
    Int,
    TrainingData,
    families_for,
)

CASES = [(name, task) for name, f in FAMILIES.items() for task in sorted(f.tasks)]
#: Small budgets: the suite runs on two cores.
FAST: dict[str, dict[str, Any]] = {
    "lightgbm": {"num_threads": 1, "num_boost_round": 150},
    "hist_gb": {"max_iter": 60, "num_threads": 1},
    "mlp": {"max_iter": 40, "num_threads": 1},
}


def training_data(task: str, rows: int = 1_200, weights: bool = False) -> TrainingData:
    frame = make_tabular(task, rows, seed=1)
    encoder = FeatureEncoder.fit(frame, ["x1", "x2", "x3", "colour"])
    X = encoder.transform(frame)
    if task == "regression":
        y, k = frame["y"].to_numpy(float), 2
    else:
        classes = sorted(frame["y"].unique())
        y, k = frame["y"].map({c: i for i, c in enumerate(classes)}).to_numpy(), len(classes)
    cut = int(rows * 0.8)
    sample_weight = np.where(y[:cut] == 0, 3.0, 1.0) if weights else None
    return TrainingData(X[:cut], y[:cut], X[cut:], y[cut:], encoder, task, k, sample_weight)


def params_for(family: Family, task: str) -> dict[str, Any]:
    return {**family.defaults(task, 7), **FAST.get(family.name, {})}


@pytest.fixture(scope="module")
def datasets() -> dict[str, TrainingData]:
    return {task: training_data(task) for task in ("binary", "multiclass", "regression")}


def test_the_catalogue_in_the_spec_matches_the_families() -> None:
    assert {n: f.tasks for n, f in FAMILIES.items()} == dict(MODEL_FAMILIES)
    assert list(FAMILIES) == list(MODEL_FAMILIES)


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_baselines_come_first_and_each_task_has_them(task: str) -> None:
    chosen = families_for(task)
    flags = [f.baseline for f in chosen]
    assert flags == sorted(flags, reverse=True)
    assert sum(flags) == 3  # majority|mean, logistic|linear, tree
    assert {"lightgbm", "hist_gb", "mlp"} <= {f.name for f in chosen}


def test_asking_for_a_family_by_a_wrong_name_or_task_says_what_fits() -> None:
    with pytest.raises(InvalidInputError, match="Did you mean 'lightgbm'"):
        families_for("binary", ["lightgmb"])
    with pytest.raises(InvalidInputError, match=r"\['mean'\] cannot learn task 'binary'"):
        families_for("binary", ["logistic", "mean"])


@pytest.mark.parametrize(("name", "task"), CASES)
def test_defaults_are_json_with_a_seed_and_cover_the_search_space(name: str, task: str) -> None:
    family = FAMILIES[name]
    defaults = family.defaults(task, 123)
    assert defaults["seed"] == 123
    assert json.loads(json.dumps(defaults)) == defaults
    for key, param in family.space.items():
        assert key in defaults, key
        if isinstance(param, Float | Int):
            assert param.low <= defaults[key] <= param.high, key
            assert param.grid and all(param.low <= g <= param.high for g in param.grid), key
        else:
            assert isinstance(param, Choice) and defaults[key] in param.values


@pytest.mark.parametrize(("name", "task"), CASES)
def test_fit_saves_safely_and_scores_by_the_task_convention(
    name: str, task: str, datasets: dict[str, TrainingData]
) -> None:
    family, data = FAMILIES[name], datasets[task]
    model = family.fit(data, params_for(family, task))
    scorer = flavors.load(family.flavor, flavors.dump(family.flavor, model), task)
    scores = scorer.predict(data.X_valid)
    n = len(data.X_valid)
    if task == "binary":
        assert scores.shape == (n,) and np.all((scores >= 0) & (scores <= 1))
    elif task == "multiclass":
        assert scores.shape == (n, data.n_classes)
        np.testing.assert_allclose(scores.sum(axis=1), 1.0, rtol=1e-6)
    else:
        assert scores.shape == (n,) and np.all(np.isfinite(scores))
    np.testing.assert_array_equal(scorer.predict_proba(data.X_valid), scores)


@pytest.mark.parametrize(("name", "task"), CASES)
def test_fit_is_deterministic_for_fixed_params(
    name: str, task: str, datasets: dict[str, TrainingData]
) -> None:
    family, data = FAMILIES[name], datasets[task]
    params = params_for(family, task)
    first, second = (
        flavors.load(family.flavor, flavors.dump(family.flavor, family.fit(data, params)), task)
        for _ in range(2)
    )
    np.testing.assert_array_equal(first.predict(data.X_valid), second.predict(data.X_valid))


@pytest.mark.parametrize(("name", "task"), [c for c in CASES if c[1] != "regression"])
def test_sample_weights_reach_the_model(name: str, task: str) -> None:
    """Up-weighting class 0 raises its predicted probability (every classifier honours it)."""
    family = FAMILIES[name]
    plain, weighted = training_data(task), training_data(task, weights=True)
    params = params_for(family, task)

    def mean_class0(data: TrainingData) -> float:
        scores = flavors.load(
            family.flavor, flavors.dump(family.flavor, family.fit(data, params)), task
        ).predict(data.X_valid)
        return float(np.mean(1 - scores if task == "binary" else scores[:, 0]))

    assert mean_class0(weighted) > mean_class0(plain) + 0.02


def test_models_learn_the_signal(datasets: dict[str, TrainingData]) -> None:
    from sklearn.metrics import r2_score, roc_auc_score

    data = datasets["binary"]
    for name in ("logistic", "tree", "lightgbm", "hist_gb", "mlp"):
        family = FAMILIES[name]
        model = family.fit(data, params_for(family, "binary"))
        scores = flavors.load(family.flavor, flavors.dump(family.flavor, model)).predict(
            data.X_valid
        )
        assert roc_auc_score(data.y_valid, scores) > 0.8, name
    reg = datasets["regression"]
    model = FAMILIES["linear"].fit(reg, params_for(FAMILIES["linear"], "regression"))
    assert r2_score(reg.y_valid, model.predict(reg.X_valid)) > 0.5


def test_boosted_models_and_the_network_stop_early(datasets: dict[str, TrainingData]) -> None:
    """With a fast learning rate the validation loss turns within the budget, and each
    model keeps fewer rounds (epochs) than it was allowed."""
    data = datasets["binary"]
    quick = {"lightgbm": {"learning_rate": 0.3}, "hist_gb": {"learning_rate": 0.5}}
    booster = FAMILIES["lightgbm"].fit(
        data, {**params_for(FAMILIES["lightgbm"], "binary"), **quick["lightgbm"]}
    )
    assert booster.best_iteration < 150
    hist = FAMILIES["hist_gb"].fit(
        data, {**params_for(FAMILIES["hist_gb"], "binary"), **quick["hist_gb"]}
    )
    assert hist.n_iter_ < 60
    mlp = {**params_for(FAMILIES["mlp"], "binary"), "max_iter": 200, "learning_rate_init": 0.01}
    network = FAMILIES["mlp"].fit(data, mlp)
    assert network[-1].n_iter_ < 100


def test_hist_gb_treats_categories_natively(datasets: dict[str, TrainingData]) -> None:
    data = datasets["multiclass"]
    model = FAMILIES["hist_gb"].fit(data, params_for(FAMILIES["hist_gb"], "multiclass"))
    assert model.is_categorical_.tolist() == [False, False, False, True]


def test_lightgbm_learns_every_task_with_its_objective(
    datasets: dict[str, TrainingData],
) -> None:
    for task, objective in (("binary", "binary"), ("multiclass", "multiclass")):
        booster = FAMILIES["lightgbm"].fit(datasets[task], params_for(FAMILIES["lightgbm"], task))
        assert booster.params["objective"] == objective
    regression = FAMILIES["lightgbm"].fit(
        datasets["regression"], params_for(FAMILIES["lightgbm"], "regression")
    )
    assert regression.params["objective"] == "regression"
    assert booster.params["num_class"] == 3


def test_a_regression_network_predicts_in_the_targets_units(
    datasets: dict[str, TrainingData],
) -> None:
    data = datasets["regression"]
    model = FAMILIES["mlp"].fit(data, params_for(FAMILIES["mlp"], "regression"))
    predicted = model.predict(data.X_valid)
    assert abs(predicted.mean() - data.y_valid.mean()) < 1.0  # the target is centred near 10


def test_cv_data_holds_what_a_search_needs() -> None:
    data = training_data("binary")
    cv = CVData(data.X, data.y, data.encoder, "binary")
    assert cv.n_classes == 2 and cv.sample_weight is None
    with pytest.raises(AttributeError):
        cv.task = "regression"  # type: ignore[misc]
