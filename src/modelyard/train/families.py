"""Model families: what can be trained, its default parameters and its search space.

A ``Family`` is plain data plus one ``fit`` function. Training, search and
reproduction all go through the same three members:

    family.defaults(task, seed)  -> params          the untuned starting point
    family.space                 -> {name: Param}   what search may vary
    family.fit(data, params)     -> fitted model    saved by ``flavors.dump(family.flavor, model)``

``fit`` must be deterministic for fixed params (they include ``seed``) and
must not look at anything but ``data``: that is what makes a run reproducible.
Params are JSON values (numbers, strings, booleans, None) so that a run can
store them exactly. Baselines come first in ``FAMILIES``: a candidate that
cannot beat them is not worth its serving cost.

    family     tasks                          flavor    baseline
    majority   binary, multiclass             sklearn   yes   class priors
    mean       regression                     sklearn   yes   the training mean
    logistic   binary, multiclass             sklearn   yes   linear preprocessing
    linear     regression (ridge)             sklearn   yes   linear preprocessing
    tree       all three (depth-limited)      sklearn   yes
    lightgbm   all three                      lightgbm  no    early stopping on validation
    hist_gb    all three                      sklearn   no    early stopping on validation
    mlp        all three (one or two layers)  sklearn   no    linear preprocessing

Classes arrive as codes 0..k-1 (``TrainingData.n_classes`` of them), and
``sample_weight`` carries class weights when the spec asks for them.

Output convention of a fitted model's scorer (``flavors.load``): binary → P(positive)
of shape (n,), multiclass → probabilities (n, k), regression → predictions (n,).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from modelyard.data.encoding import FeatureEncoder
from modelyard.errors import InvalidInputError
from modelyard.spec_issues import did_you_mean

TASKS = ("binary", "multiclass", "regression")
CLASSIFICATION = frozenset({"binary", "multiclass"})
ALL_TASKS = frozenset(TASKS)
REGRESSION = frozenset({"regression"})


@dataclass(frozen=True)
class TrainingData:
    """Encoded training and validation rows, and what a family needs to know about them."""

    X: np.ndarray
    y: np.ndarray
    X_valid: np.ndarray
    y_valid: np.ndarray
    encoder: FeatureEncoder
    task: str
    n_classes: int = 2
    sample_weight: np.ndarray | None = None


@dataclass(frozen=True)
class CVData:
    """Encoded rows for cross-validated search: the folds are cut from these by the search."""

    X: np.ndarray
    y: np.ndarray
    encoder: FeatureEncoder
    task: str
    n_classes: int = 2
    sample_weight: np.ndarray | None = None


@dataclass(frozen=True)
class Float:
    low: float
    high: float
    log: bool = False
    grid: tuple[float, ...] = ()


@dataclass(frozen=True)
class Int:
    low: int
    high: int
    log: bool = False
    grid: tuple[int, ...] = ()


@dataclass(frozen=True)
class Choice:
    values: tuple[Any, ...]


Param = Float | Int | Choice


@dataclass(frozen=True)
class Family:
    """A model family: name, how it is saved, where it applies, and how to fit it."""

    name: str
    flavor: str
    tasks: frozenset[str]
    defaults: Callable[[str, int], dict[str, Any]]
    fit: Callable[[TrainingData, dict[str, Any]], Any]
    space: Mapping[str, Param] = field(default_factory=dict)
    baseline: bool = False
    description: str = ""


# --------------------------------------------------------------------------- baselines


def _majority_defaults(task: str, seed: int) -> dict[str, Any]:
    return {"strategy": "prior", "seed": seed}


def _fit_majority(data: TrainingData, params: dict[str, Any]) -> Any:
    """Predicts the class priors (and so the most frequent class) whatever the input."""
    from sklearn.dummy import DummyClassifier

    model = DummyClassifier(strategy=params["strategy"], random_state=params["seed"])
    return model.fit(data.X, data.y, sample_weight=data.sample_weight)


def _mean_defaults(task: str, seed: int) -> dict[str, Any]:
    return {"strategy": "mean", "seed": seed}


def _fit_mean(data: TrainingData, params: dict[str, Any]) -> Any:
    from sklearn.dummy import DummyRegressor

    model = DummyRegressor(strategy=params["strategy"])
    return model.fit(data.X, data.y, sample_weight=data.sample_weight)


def _logistic_defaults(task: str, seed: int) -> dict[str, Any]:
    return {"C": 1.0, "max_iter": 1000, "seed": seed}


def _fit_logistic(data: TrainingData, params: dict[str, Any]) -> Any:
    """Median-imputed, scaled numbers and one-hot categories into a logistic regression."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(
        C=params["C"], max_iter=params["max_iter"], random_state=params["seed"]
    )
    with _quiet_convergence():
        return _linear_pipeline(data.encoder, model).fit(
            data.X, data.y, model__sample_weight=data.sample_weight
        )


def _linear_defaults(task: str, seed: int) -> dict[str, Any]:
    return {"alpha": 1.0, "seed": seed}


def _fit_linear(data: TrainingData, params: dict[str, Any]) -> Any:
    """Ridge regression behind the same preprocessing as the logistic baseline."""
    from sklearn.linear_model import Ridge

    pipeline = _linear_pipeline(data.encoder, Ridge(alpha=params["alpha"]))
    return pipeline.fit(data.X, data.y, model__sample_weight=data.sample_weight)


def _tree_defaults(task: str, seed: int) -> dict[str, Any]:
    return {"max_depth": 6, "min_samples_leaf": 20, "seed": seed}


def _fit_tree(data: TrainingData, params: dict[str, Any]) -> Any:
    """A depth-limited decision tree; missing values are routed natively, categories as codes."""
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    kind = DecisionTreeRegressor if data.task == "regression" else DecisionTreeClassifier
    model = kind(
        max_depth=params["max_depth"],
        min_samples_leaf=params["min_samples_leaf"],
        random_state=params["seed"],
    )
    return model.fit(data.X, data.y, sample_weight=data.sample_weight)


def linear_preprocessing(encoder: FeatureEncoder) -> Any:
    """Impute and scale numbers, one-hot categories (unseen and missing → all zeros)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    categorical = encoder.categorical_indices
    numeric = [i for i in range(len(encoder.fields)) if i not in categorical]
    categories = make_pipeline(
        SimpleImputer(strategy="constant", fill_value=-1), OneHotEncoder(handle_unknown="ignore")
    )
    numbers = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
    return ColumnTransformer(
        [("numbers", numbers, numeric), ("categories", categories, categorical)]
    )


def _linear_pipeline(encoder: FeatureEncoder, model: Any) -> Any:
    from sklearn.pipeline import Pipeline

    return Pipeline([("prep", linear_preprocessing(encoder)), ("model", model)])


# --------------------------------------------------------------------------- boosted trees


_LIGHTGBM_OBJECTIVES = {"binary": "binary", "multiclass": "multiclass", "regression": "regression"}


def _lightgbm_defaults(task: str, seed: int) -> dict[str, Any]:
    return {
        "objective": _LIGHTGBM_OBJECTIVES[task],
        "learning_rate": 0.05,
        "num_leaves": 31,
        "min_data_in_leaf": 40,
        "feature_fraction": 0.9,
        "bagging_fraction": 0.9,
        "bagging_freq": 1,
        "num_boost_round": 600,
        "early_stopping_rounds": 40,
        "seed": seed,
        "deterministic": True,
        "num_threads": 2,
        "verbose": -1,
    }


def _fit_lightgbm(data: TrainingData, params: dict[str, Any]) -> Any:
    """Gradient-boosted trees with native categories and early stopping on validation."""
    import lightgbm as lgb

    rounds = ("num_boost_round", "early_stopping_rounds")
    booster_params = {k: v for k, v in params.items() if k not in rounds}
    if data.task == "multiclass":
        booster_params["num_class"] = data.n_classes
    train = lgb.Dataset(
        data.X,
        data.y,
        weight=data.sample_weight,
        categorical_feature=data.encoder.categorical_indices,
        free_raw_data=False,
    )
    valid = lgb.Dataset(data.X_valid, data.y_valid, reference=train)
    return lgb.train(
        booster_params,
        train,
        num_boost_round=params["num_boost_round"],
        valid_sets=[valid],
        callbacks=[lgb.early_stopping(params["early_stopping_rounds"], verbose=False)],
    )


def _hist_gb_defaults(task: str, seed: int) -> dict[str, Any]:
    return {
        "learning_rate": 0.1,
        "max_iter": 300,
        "max_leaf_nodes": 31,
        "min_samples_leaf": 20,
        "l2_regularization": 1e-6,
        "max_bins": 255,
        "n_iter_no_change": 20,
        "num_threads": 2,
        "seed": seed,
    }


def _fit_hist_gb(data: TrainingData, params: dict[str, Any]) -> Any:
    """scikit-learn's histogram boosting: native categories, early stopping on validation.

    A category with more values than ``max_bins`` is passed as its (ordinal) code.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    kind = (
        HistGradientBoostingRegressor
        if data.task == "regression"
        else HistGradientBoostingClassifier
    )
    categorical = [
        i
        for i in data.encoder.categorical_indices
        if len(data.encoder.fields[i].categories) <= params["max_bins"]
    ]
    model = kind(
        learning_rate=params["learning_rate"],
        max_iter=params["max_iter"],
        max_leaf_nodes=params["max_leaf_nodes"],
        min_samples_leaf=params["min_samples_leaf"],
        l2_regularization=params["l2_regularization"],
        max_bins=params["max_bins"],
        categorical_features=categorical or None,
        early_stopping=True,
        n_iter_no_change=params["n_iter_no_change"],
        random_state=params["seed"],
    )
    with _threads(params["num_threads"]):
        return model.fit(
            data.X,
            data.y,
            sample_weight=data.sample_weight,
            X_val=data.X_valid,
            y_val=data.y_valid,
        )


# --------------------------------------------------------------------------- neural network


def _mlp_defaults(task: str, seed: int) -> dict[str, Any]:
    return {
        "hidden_units": 64,
        "hidden_layers": 1,
        "alpha": 1e-4,
        "learning_rate_init": 1e-3,
        "batch_size": 200,
        "max_iter": 200,
        "n_iter_no_change": 10,
        "tol": 1e-4,
        "num_threads": 2,
        "seed": seed,
    }


def _fit_mlp(data: TrainingData, params: dict[str, Any]) -> Any:
    """A small multi-layer perceptron behind the linear preprocessing.

    Trained an epoch at a time; it stops early when the validation loss (log
    loss, or squared error of the standardised target) has not improved by
    ``tol`` for ``n_iter_no_change`` epochs, and keeps the weights of the best
    epoch. (scikit-learn's own
    ``early_stopping`` keeps the best *accuracy*, which on imbalanced classes
    is the network that predicts the majority class.) A regression network
    learns the standardised target; its output layer is then rescaled, so the
    saved model predicts in the target's units.
    """
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.pipeline import Pipeline

    regression = data.task == "regression"
    kind = MLPRegressor if regression else MLPClassifier
    model = kind(
        hidden_layer_sizes=(params["hidden_units"],) * params["hidden_layers"],
        alpha=params["alpha"],
        learning_rate_init=params["learning_rate_init"],
        batch_size=min(params["batch_size"], len(data.X)),
        random_state=params["seed"],
    )
    prep = linear_preprocessing(data.encoder).fit(data.X)
    mean, scale = (float(np.mean(data.y)), float(np.std(data.y)) or 1.0) if regression else (0, 1)
    fit = _EpochFit(model, prep.transform(data.X), (data.y - mean) / scale, data.sample_weight)
    with _threads(params["num_threads"]):
        fit.run(
            prep.transform(data.X_valid),
            (data.y_valid - mean) / scale,
            params["max_iter"],
            (params["n_iter_no_change"], params["tol"]),
            None if regression else list(range(data.n_classes)),
        )
    if regression:
        model.coefs_[-1] = model.coefs_[-1] * scale
        model.intercepts_[-1] = model.intercepts_[-1] * scale + mean
    return Pipeline([("prep", prep), ("model", model)])


@dataclass
class _EpochFit:
    """``partial_fit`` one epoch at a time, keeping the weights with the best validation loss."""

    model: Any
    X: Any
    y: np.ndarray
    sample_weight: np.ndarray | None

    def run(
        self,
        X_valid: Any,
        y_valid: np.ndarray,
        epochs: int,
        stop: tuple[int, float],
        classes: Any,
    ) -> None:
        """Up to ``epochs`` epochs; stop after ``stop = (patience, tol)``: ``patience``
        epochs without the validation loss improving by at least ``tol``."""
        patience, tol = stop
        best, best_weights, waited = np.inf, None, 0
        for epoch in range(1, epochs + 1):
            with _quiet_convergence():
                if classes is None:
                    self.model.partial_fit(self.X, self.y, sample_weight=self.sample_weight)
                else:
                    self.model.partial_fit(
                        self.X, self.y, sample_weight=self.sample_weight, classes=classes
                    )
            self.model.n_iter_ = epoch  # partial_fit counts every call as epoch 1
            loss = self._loss(X_valid, y_valid, classes)
            if loss < best - tol:
                best, waited = loss, 0
                best_weights = (
                    [w.copy() for w in self.model.coefs_],
                    [b.copy() for b in self.model.intercepts_],
                )
            else:
                waited += 1
                if waited >= patience:
                    break
        if best_weights is not None:
            self.model.coefs_, self.model.intercepts_ = best_weights

    def _loss(self, X_valid: Any, y_valid: np.ndarray, classes: Any) -> float:
        from sklearn.metrics import log_loss

        if classes is None:
            return float(np.mean((self.model.predict(X_valid) - y_valid) ** 2))
        return float(log_loss(y_valid, self.model.predict_proba(X_valid), labels=classes))


def _threads(count: int) -> Any:
    """At most ``count`` OpenMP and BLAS threads while fitting: idle cores are not free
    when searches run in parallel, and spinning OpenMP threads slow a busy machine down.
    (threadpoolctl comes with scikit-learn, which requires it.)"""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=count)


@contextmanager
def _quiet_convergence() -> Iterator[None]:
    """``max_iter`` is a deliberate budget here, not a mistake worth a warning."""
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


# --------------------------------------------------------------------------- the catalogue


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family(
            "majority",
            "sklearn",
            CLASSIFICATION,
            _majority_defaults,
            _fit_majority,
            baseline=True,
            description="class priors; predicts the most frequent class",
        ),
        Family(
            "mean",
            "sklearn",
            REGRESSION,
            _mean_defaults,
            _fit_mean,
            baseline=True,
            description="predicts the training mean",
        ),
        Family(
            "logistic",
            "sklearn",
            CLASSIFICATION,
            _logistic_defaults,
            _fit_logistic,
            space={"C": Float(1e-3, 1e2, log=True, grid=(0.01, 0.1, 1.0, 10.0))},
            baseline=True,
            description="logistic regression on scaled numbers and one-hot categories",
        ),
        Family(
            "linear",
            "sklearn",
            REGRESSION,
            _linear_defaults,
            _fit_linear,
            space={"alpha": Float(1e-3, 1e3, log=True, grid=(0.1, 1.0, 10.0, 100.0))},
            baseline=True,
            description="ridge regression on scaled numbers and one-hot categories",
        ),
        Family(
            "tree",
            "sklearn",
            ALL_TASKS,
            _tree_defaults,
            _fit_tree,
            space={
                "max_depth": Int(2, 12, grid=(3, 6, 9)),
                "min_samples_leaf": Int(1, 200, log=True, grid=(5, 20, 80)),
            },
            baseline=True,
            description="a depth-limited decision tree",
        ),
        Family(
            "lightgbm",
            "lightgbm",
            ALL_TASKS,
            _lightgbm_defaults,
            _fit_lightgbm,
            space={
                "learning_rate": Float(0.01, 0.3, log=True, grid=(0.03, 0.1)),
                "num_leaves": Int(8, 128, log=True, grid=(15, 31, 63)),
                "min_data_in_leaf": Int(5, 200, log=True, grid=(20, 80)),
                "feature_fraction": Float(0.5, 1.0, grid=(0.7, 0.9)),
            },
            description="LightGBM gradient-boosted trees",
        ),
        Family(
            "hist_gb",
            "sklearn",
            ALL_TASKS,
            _hist_gb_defaults,
            _fit_hist_gb,
            space={
                "learning_rate": Float(0.01, 0.3, log=True, grid=(0.05, 0.1)),
                "max_leaf_nodes": Int(8, 128, log=True, grid=(15, 31, 63)),
                "min_samples_leaf": Int(5, 200, log=True, grid=(20, 80)),
                "l2_regularization": Float(1e-6, 10.0, log=True, grid=(1e-6, 1.0)),
            },
            description="scikit-learn histogram gradient boosting",
        ),
        Family(
            "mlp",
            "sklearn",
            ALL_TASKS,
            _mlp_defaults,
            _fit_mlp,
            space={
                "hidden_units": Int(16, 256, log=True, grid=(32, 64, 128)),
                "hidden_layers": Choice((1, 2)),
                "alpha": Float(1e-6, 1e-1, log=True, grid=(1e-5, 1e-3)),
                "learning_rate_init": Float(1e-4, 1e-2, log=True, grid=(1e-3, 3e-3)),
            },
            description="a small multi-layer perceptron",
        ),
    )
}


def get_family(name: str) -> Family:
    """The family called ``name``; the error lists the known ones."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise InvalidInputError(
            f"Unknown model family {name!r}; known: {', '.join(FAMILIES)}."
            + did_you_mean(name, FAMILIES)
        ) from None


def families_for(task: str, names: list[str] | None = None) -> list[Family]:
    """The families that apply to ``task``, or the ``names`` asked for, in catalogue order
    (baselines first)."""
    if names:
        chosen = [get_family(n) for n in names]
        unfit = [f.name for f in chosen if task not in f.tasks]
        if unfit:
            fits = [f.name for f in FAMILIES.values() if task in f.tasks]
            raise InvalidInputError(
                f"Model families {unfit} cannot learn task {task!r}; choose from {fits}."
            )
    else:
        chosen = list(FAMILIES.values())
    order = list(FAMILIES)
    return sorted(
        (f for f in chosen if task in f.tasks), key=lambda f: (not f.baseline, order.index(f.name))
    )
