import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import modelyard.cli.data_checks  # noqa: F401  (registers `modelyard data check`)
from modelyard.cli import app
from modelyard.data.datasets import add_dataset
from modelyard.data.demo import make_loans
from modelyard.data.leakage import CHECKS, LeakageOptions, LeakageReport, check_split
from modelyard.data.splits import Split, make_split
from modelyard.project import Project
from modelyard.spec import Spec, parse_spec

ROWS = 3_000


def spec(task: str = "binary", **columns: str) -> Spec:
    lines = "".join(f"\n  {role}: {name}" for role, name in {"id": "id", **columns}.items())
    return parse_spec(f"name: t\ntask: {task}\ntarget: y\ncolumns:{lines}\n")


def loans(rows: int = ROWS, seed: int = 0) -> pd.DataFrame:
    """A binary task: `score` is informative, `noise` is not, `city` is text."""
    rng = np.random.default_rng(seed)
    score = rng.normal(size=rows)
    return pd.DataFrame(
        {
            "id": [f"A{i:05d}" for i in range(rows)],
            "score": score,
            "noise": rng.normal(size=rows),
            "amount": rng.lognormal(9, 0.5, size=rows).round(2),
            "city": rng.choice(["Paris", "Rome", "Oslo", "Lima"], size=rows),
            "y": (rng.random(rows) < 1 / (1 + np.exp(-1.5 * score))).astype(int),
        }
    )


def flipped(y: np.ndarray, share: float, seed: int = 1) -> np.ndarray:
    flip = np.random.default_rng(seed).random(len(y)) < share
    return np.where(flip, 1 - y, y)


def only(report: LeakageReport, check: str) -> list[str]:
    return [f.message for f in report.by_check(check)]


# --------------------------------------------------------------------------- target leakage


def test_a_noisy_copy_of_a_class_target_is_flagged_with_its_auc() -> None:
    data = loans().assign(leak=lambda f: flipped(f["y"].to_numpy(), 0.03))
    report = check_split(data, spec(), make_split(data, spec()))
    [finding] = report.by_check("target_leakage")
    assert finding.severity == "error" and finding.details["feature"] == "leak"
    assert finding.details["value"] >= 0.95 and finding.details["metric"] == "roc_auc"
    assert f"ROC-AUC {finding.details['value']:.3f}" in finding.message
    assert 0.7 < report.target_scores["score"] < 0.95  # informative, and not flagged
    assert report.target_scores["noise"] < 0.6
    assert not report.passed


def test_a_noisy_copy_of_a_regression_target_is_flagged_with_its_r2() -> None:
    rng = np.random.default_rng(2)
    data = loans().assign(y=lambda f: 3 * f["score"] + rng.normal(0, 2, len(f)))
    data["leak"] = data["y"] + rng.normal(0, 0.1, len(data))
    report = check_split(data, spec("regression"), make_split(data, spec("regression")))
    [finding] = report.by_check("target_leakage")
    assert finding.details["feature"] == "leak" and finding.details["metric"] == "r2"
    assert (
        finding.details["value"] >= 0.9 and f"R² {finding.details['value']:.3f}" in finding.message
    )
    assert 0.4 < report.target_scores["score"] < 0.9


def test_a_text_column_that_spells_the_class_is_flagged() -> None:
    data = loans()
    data["status"] = np.where(flipped(data["y"].to_numpy(), 0.02) == 1, " Charged-off", "paid")
    report = check_split(data, spec(), make_split(data, spec()))
    assert [f.details["feature"] for f in report.by_check("target_leakage")] == ["status"]
    assert report.target_scores["city"] < 0.6


def test_multiclass_leak_is_scored_one_vs_rest() -> None:
    rng = np.random.default_rng(3)
    data = loans().assign(y=rng.choice(["a", "b", "c"], size=ROWS))
    data["leak"] = data["y"].map({"a": 0.0, "b": 1.0, "c": 2.0}) + rng.normal(0, 0.2, ROWS)
    report = check_split(data, spec("multiclass"), make_split(data, spec("multiclass")))
    assert [f.details["feature"] for f in report.by_check("target_leakage")] == ["leak"]
    assert report.target_metric == "roc_auc"


def test_the_threshold_is_configurable() -> None:
    data = loans()
    report = check_split(data, spec(), make_split(data, spec()), LeakageOptions(max_auc=0.6))
    assert [f.details["feature"] for f in report.by_check("target_leakage")] == ["score"]


# --------------------------------------------------------------------------- duplicates


def test_a_clean_split_passes_every_check() -> None:
    data = loans()
    report = check_split(data, spec(), make_split(data, spec()))
    assert report.findings == [] and report.passed
    assert "row_overlap" in report.ran and "near_duplicate" in report.ran
    assert report.skipped.keys() == {"group_overlap", "time_leakage"}
    assert {*report.ran, *report.skipped} == set(CHECKS)
    json.dumps(report.to_dict())


def test_a_row_copied_across_train_and_test_is_an_exact_overlap() -> None:
    data = loans()
    split = make_split(data, spec())
    train, test = split.positions(data).train[10], split.positions(data).test[20]
    data.iloc[test, 1:] = data.iloc[train, 1:]  # every column but the id
    report = check_split(data, spec(), split)
    [finding] = report.by_check("row_overlap")
    assert finding.severity == "error" and finding.details["rows"] == 1
    assert finding.details["examples"] == [
        {"test": data["id"].iloc[test], "train": data["id"].iloc[train]}
    ]
    assert data["id"].iloc[test] in finding.message
    assert report.by_check("near_duplicate") == []  # an exact copy is reported once


def test_a_jittered_recased_copy_is_a_near_duplicate() -> None:
    data = loans()
    split = make_split(data, spec())
    train, valid = split.positions(data).train[5], split.positions(data).validation[7]
    data.iloc[valid, 1:] = data.iloc[train, 1:]
    data.loc[valid, "score"] += 0.001 * data["score"].std()
    data.loc[valid, "city"] = f"  {data.loc[train, 'city'].upper()} "
    report = check_split(data, spec(), split)
    assert report.by_check("row_overlap") == []
    [finding] = report.by_check("near_duplicate")
    assert finding.details["rows"] == 1
    assert finding.details["examples"] == [
        {"row": data["id"].iloc[valid], "train": data["id"].iloc[train]}
    ]


def test_a_bigger_jitter_or_another_word_is_not_a_near_duplicate() -> None:
    data = loans()
    split = make_split(data, spec())
    train, rest = split.positions(data).train[:2], split.positions(data).test[:2]
    data.iloc[rest, 1:] = data.iloc[train, 1:].to_numpy()
    data.loc[rest[0], "score"] += 0.05 * data["score"].std()
    data.loc[rest[1], "city"] = "Quito"
    assert check_split(data, spec(), split).by_check("near_duplicate") == []


def test_small_overlaps_can_be_made_warnings() -> None:
    data = loans()
    split = make_split(data, spec())
    data.iloc[split.positions(data).test[0], 1:] = data.iloc[split.positions(data).train[0], 1:]
    report = check_split(data, spec(), split, LeakageOptions(overlap_error_share=0.01))
    assert [f.severity for f in report.by_check("row_overlap")] == ["warning"]
    assert report.passed


# --------------------------------------------------------------------------- ids and groups


def test_a_split_built_by_hand_across_groups_is_caught() -> None:
    data = loans().assign(customer=lambda f: np.arange(len(f)) // 5)
    ids = data["id"].to_numpy()
    # Customer 400 owns rows 2000..2004: row 2000 in train, the others in validation.
    wrong = Split(
        train=ids[:2001],
        validation=ids[2001:2500],
        test=ids[2500:],
        method="manual",
        seed=0,
        id_column="id",
    )
    report = check_split(data, spec(group="customer"), wrong)
    [finding] = report.by_check("group_overlap")
    assert finding.severity == "error" and finding.details["groups"] == 1
    assert finding.details["examples"] == [400] and finding.details["parts"] == [
        "train",
        "validation",
    ]
    grouped = make_split(data, spec(group="customer"))
    assert check_split(data, spec(group="customer"), grouped).by_check("group_overlap") == []


def test_an_id_on_two_sides_is_caught() -> None:
    data = loans()
    ids = data["id"].to_numpy()
    wrong = Split(
        train=ids[:2000],
        validation=ids[2000:2500],
        test=ids[2499:],
        method="manual",
        seed=0,
        id_column="id",
    )
    report = check_split(data, spec(), wrong)
    [finding] = report.by_check("id_overlap")
    assert finding.details["examples"] == [ids[2499]] and ids[2499] in finding.message


# --------------------------------------------------------------------------- time


def timed() -> pd.DataFrame:
    data = loans()
    return data.assign(when=pd.date_range("2024-01-01", periods=len(data), freq="h", tz="UTC"))


def test_a_random_split_of_time_ordered_rows_leaks_time_a_time_split_does_not() -> None:
    data = timed()
    random = make_split(data, spec(time="when"), "random")
    findings = check_split(data, spec(time="when"), random).by_check("time_leakage")
    assert {tuple(f.details["parts"]) for f in findings} >= {
        ("train", "validation"),
        ("train", "test"),
    }
    first = findings[0]
    assert first.severity == "warning" and first.details["rows"] > 0
    assert "rows older than the newest train row" in first.message and "days" in first.message
    by_time = make_split(data, spec(time="when"), "time")
    assert check_split(data, spec(time="when"), by_time).by_check("time_leakage") == []


def test_time_leakage_is_an_error_when_the_split_claims_time_order() -> None:
    data = timed()
    ids = data["id"].to_numpy()
    wrong = Split(
        train=ids[500:],
        validation=ids[:200],
        test=ids[200:500],
        method="time",
        seed=0,
        id_column="id",
    )
    findings = check_split(data, spec(time="when"), wrong).by_check("time_leakage")
    assert findings and all(f.severity == "error" for f in findings)
    assert findings[0].details["rows"] == 200


# --------------------------------------------------------------------------- useless columns


def test_constant_and_empty_features_are_warnings() -> None:
    data = loans().assign(flag=1, blank=np.nan)
    report = check_split(data, spec(), make_split(data, spec()))
    assert report.by_check("constant_feature")[0].details["columns"] == ["flag"]
    assert report.by_check("empty_feature")[0].details["columns"] == ["blank"]
    assert report.passed and len(report.warnings) == 2


# --------------------------------------------------------------------------- the command


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_data_check_exits_1_on_a_leaked_column_and_0_on_clean_data(
    project: Project, runner: CliRunner
) -> None:
    clean = make_loans(2_000)
    add_dataset(project, "loans", clean)
    leaky = clean.assign(recovered=flipped(clean["default"].to_numpy(), 0.03))
    add_dataset(project, "leaky", leaky)
    spec_option = ["--spec", str(project.spec_path), "data", "check"]

    ok = runner.invoke(app, [*spec_option, "loans@1"])
    assert ok.exit_code == 0, ok.output
    assert "stratified split (seed 42)" in ok.output and "No leakage errors" in ok.output

    bad = runner.invoke(app, [*spec_option, "leaky@1", "--seed", "3"])
    assert bad.exit_code == 1, bad.output
    assert "recovered" in bad.output and "ROC-AUC" in bad.output and "1 error:" in bad.output

    timed_ok = runner.invoke(app, [*spec_option, "loans@1", "--split", "time"])
    assert timed_ok.exit_code == 0, timed_ok.output
    assert "time split" in timed_ok.output and "Leakage checks" not in timed_ok.output


def test_data_check_can_tolerate_a_small_overlap(project: Project, runner: CliRunner) -> None:
    data = make_loans(1_000)
    data.iloc[1:11, 2:] = data.iloc[0, 2:]  # rows 0..10 share all but the id and time
    add_dataset(project, "copies", data)
    spec_option = ["--spec", str(project.spec_path), "data", "check", "copies@1"]
    strict = runner.invoke(app, [*spec_option, "--split", "random", "--seed", "1"])
    assert strict.exit_code == 1 and "row_overlap" in strict.output, strict.output
    lenient = runner.invoke(
        app, [*spec_option, "--split", "random", "--seed", "1", "--max-overlap", "0.05"]
    )
    assert lenient.exit_code == 0 and "row_overlap" in lenient.output, lenient.output
