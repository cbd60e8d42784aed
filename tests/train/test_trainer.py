import numpy as np
import pytest

from modelyard.data.datasets import add_dataset
from modelyard.data.demo import make_loans
from modelyard.errors import DataError
from modelyard.project import Project
from modelyard.train.bundle import load_bundle
from modelyard.train.runs import get_run, list_runs
from modelyard.train.trainer import binary_target, train_candidates


@pytest.fixture(scope="module")
def trained(module_project: Project):  # type: ignore[no-untyped-def]
    frame = make_loans(4_000, recent_share=0.0, seed=11).drop(columns="period")
    dataset = add_dataset(module_project, "loans", frame)
    return dataset, frame, train_candidates(module_project, dataset, frame, seed=5)


def test_features_leave_out_target_ids_time_pii_and_sensitive(module_project: Project) -> None:
    columns = list(make_loans(200).columns)
    features = module_project.spec.feature_columns(columns)
    for column in ("default", "loan_id", "applied_at", "email", "gender", "period"):
        assert column not in features
    assert "credit_score" in features


def test_every_candidate_is_a_recorded_run(module_project: Project, trained) -> None:  # type: ignore[no-untyped-def]
    _, _, results = trained
    assert [r.name for r in results] == ["logistic", "lightgbm"]
    assert results[0].baseline and not results[1].baseline
    for result in results:
        run = get_run(module_project, result.run_id)
        assert run.status == "finished"
        assert run.spec_hash == module_project.spec_hash
        assert run.metrics["roc_auc"] == pytest.approx(result.metrics["roc_auc"])
        assert run.params["baseline"] == str(result.baseline)
    assert {r.id for r in list_runs(module_project)} >= {r.run_id for r in results}


def test_models_learn_something_real(trained) -> None:  # type: ignore[no-untyped-def]
    _, _, results = trained
    for result in results:
        assert result.metrics["roc_auc"] > 0.65, result.name
        assert {g.name for g in result.gates} == {"roc_auc", "recall", "ece"}
        assert 0 < result.metrics["threshold"] < 0.5  # false negatives cost 8× more


def test_saved_bundle_predicts_exactly_what_was_evaluated(module_project: Project, trained) -> None:  # type: ignore[no-untyped-def]
    _, frame, results = trained
    for result in results:
        loaded = load_bundle(module_project.artifacts, result.digest)
        X = loaded.encode_frame(frame.head(300))
        np.testing.assert_array_equal(loaded.predict_proba(X), result.bundle.predict_proba(X))
        assert loaded.threshold == result.bundle.threshold


def test_target_problems_are_reported(module_project: Project) -> None:
    frame = make_loans(300)
    with pytest.raises(DataError, match="single class"):
        binary_target(module_project.spec, frame.assign(default=0))
    with pytest.raises(DataError, match="not in the data"):
        binary_target(module_project.spec, frame.drop(columns="default"))
