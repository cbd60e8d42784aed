"""The evaluation report: curves against scikit-learn, valid escaped HTML, the JSON twin."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn import metrics as skm

from modelyard.errors import InvalidInputError
from modelyard.evaluate.metrics import best_threshold, expected_calibration_error
from modelyard.evaluate.plots import MAX_POINTS, thin
from modelyard.evaluate.report import (
    FORMAT,
    JSON_POINTS,
    build_evaluation,
    curves,
    model_card,
    render_report,
    write_report,
)
from modelyard.evaluate.robustness import Perturbation
from modelyard.spec import parse_spec

SPEC = """\
name: loans
decision: Approve or decline a personal-loan application.
task: binary
target: default
metrics:
  - {name: roc_auc, threshold: 0.7}
  - {name: recall, threshold: 0.95}
costs: {false_positive: 1.0, false_negative: 8.0, currency: EUR}
"""
SECTIONS = ("gates", "model-card", "metrics", "curves", "slices", "robustness", "fairness", "drift")
EVIL = "<script>alert('x')</script>"


@pytest.fixture(scope="module")
def scored() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    proba = rng.beta(2, 5, 5_000)
    y = (rng.random(5_000) < np.clip(proba * 1.2, 0, 1)).astype(int)
    return y, proba


def _evaluation(y: np.ndarray, proba: np.ndarray, name: str = "loans") -> dict[str, Any]:
    slices = [
        {"name": f"young {EVIL}", "condition": "age < 25", "size": 300, "value": 0.61,
         "ci_low": 0.55, "ci_high": 0.66, "overall": 0.72, "metric": "roc_auc"},
        {"name": "owners", "condition": "home == 'OWN'", "size": 800, "value": 0.74,
         "ci_low": 0.7, "ci_high": 0.78, "overall": 0.72, "metric": "roc_auc"},
    ]  # fmt: skip
    fairness = [
        {"attribute": "gender", "demographic_parity_difference": 0.15,
         "equalized_odds_difference": 0.04,
         "groups": [{"group": f"x{EVIL}", "size": 50, "selection_rate": 0.3, "tpr": 0.7},
                    {"group": "y", "size": 70, "selection_rate": 0.45, "tpr": 0.72}]},
    ]  # fmt: skip
    drift = [
        {"feature": "income", "labels": ["low", "mid", "high"], "reference": [0.3, 0.4, 0.3],
         "current": [0.5, 0.3, 0.2], "statistics": {"psi": 0.31}, "drifted": True},
    ]  # fmt: skip
    robustness = [
        Perturbation("noise σ = 0.25 × std", "noise", 0.72, 0.69, -0.03, 0.14, 5000, 0, 5000,
                     metric="roc_auc"),
        Perturbation("malformed: unknown category", "malformed", None, None, None, 0.02, 100,
                     0, 100, metric="roc_auc"),
        Perturbation("malformed: not an object", "malformed", None, None, None, None, 100,
                     99, 0, ("row 3: encode_records raised KeyError: 'age'",), "roc_auc",
                     "expected an object of fields"),
    ]  # fmt: skip
    return build_evaluation(
        parse_spec(SPEC),
        model={"name": name, "version": 3, "flavor": "sklearn", "digest": "ab" * 32},
        data={"ref": "loans@2"},
        y=y,
        scores=proba,
        threshold=0.2,
        slices=slices,
        robustness=robustness,
        fairness=fairness,
        drift=drift,
    )


@pytest.fixture(scope="module")
def evaluation(scored: tuple[np.ndarray, np.ndarray]) -> dict[str, Any]:
    return _evaluation(*scored)


class _Page(HTMLParser):
    """Checks that every element is closed in order, and collects ids, tags and text."""

    VOID = frozenset({"meta", "br", "hr", "img", "input", "link", "circle", "line", "rect",
                      "polyline", "path"})  # fmt: skip

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.ids: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.problems: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self.ids += [v for k, v in attrs if k == "id" and v]
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        if tag in self.VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes <{self.stack[-1] if self.stack else None}>")
        else:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(page: str) -> _Page:
    parser = _Page()
    parser.feed(page)
    parser.close()
    assert parser.problems == [] and parser.stack == []
    return parser


# --------------------------------------------------------------------------- curves


def test_curves_agree_with_scikit_learn(scored: tuple[np.ndarray, np.ndarray]) -> None:
    y, proba = scored
    found = curves(y, proba, 1.0, 8.0, threshold=0.2)
    assert found["roc"]["auc"] == pytest.approx(skm.roc_auc_score(y, proba), abs=1e-12)
    assert found["pr"]["ap"] == pytest.approx(skm.average_precision_score(y, proba), abs=1e-12)
    roc = found["roc"]
    assert len(roc["fpr"]) <= JSON_POINTS
    assert (roc["fpr"][0], roc["tpr"][0], roc["fpr"][-1], roc["tpr"][-1]) == (0, 0, 1, 1)
    # the thinned curve still encloses the exact area, to well under a rounding of the AUC
    assert np.trapezoid(roc["tpr"], roc["fpr"]) == pytest.approx(roc["auc"], abs=2e-3)
    assert found["pr"]["prevalence"] == pytest.approx(y.mean())


def test_calibration_bins_and_ece_match_the_metric(scored: tuple[np.ndarray, np.ndarray]) -> None:
    y, proba = scored
    cal = curves(y, proba)["calibration"]
    assert len(cal["bins"]) == 15 and sum(b["count"] for b in cal["bins"]) == len(y)
    assert cal["ece"] == pytest.approx(expected_calibration_error(y, proba), rel=1e-12)
    top = cal["bins"][2]
    inside = (proba > top["lo"]) & (proba <= top["hi"])
    assert top["count"] == inside.sum()
    assert top["frac_pos"] == pytest.approx(y[inside].mean())
    equal = curves(y, proba, calibration_strategy="quantile")["calibration"]
    counts = [b["count"] for b in equal["bins"]]
    assert equal["strategy"] == "quantile" and max(counts) - min(counts) <= 1


def test_cost_curve_finds_the_cheapest_threshold(scored: tuple[np.ndarray, np.ndarray]) -> None:
    y, proba = scored
    cost = curves(y, proba, 1.0, 8.0, threshold=0.2)["cost"]

    def brute(t: float) -> float:
        positive = proba >= t
        return float(np.sum(positive & (y == 0)) + 8.0 * np.sum(~positive & (y == 1)))

    threshold, per_row = best_threshold(y, proba, 1.0, 8.0)
    assert cost["best_threshold"] == pytest.approx(threshold)
    assert cost["best_cost"] == pytest.approx(per_row * len(y))
    assert cost["best_cost"] == pytest.approx(brute(cost["best_threshold"]))
    assert cost["chosen_cost"] == pytest.approx(brute(0.2))
    assert cost["costs"][0] == pytest.approx(8.0 * y.sum())  # above every score: no positives
    assert len(cost["thresholds"]) <= JSON_POINTS
    assert cost["best_threshold"] in [pytest.approx(t, abs=1e-6) for t in cost["thresholds"]]


def test_curves_refuse_what_they_cannot_draw() -> None:
    with pytest.raises(InvalidInputError, match="both classes"):
        curves([1, 1, 1], [0.2, 0.3, 0.9])
    with pytest.raises(InvalidInputError, match="finite"):
        curves([0, 1], [0.2, float("nan")])


def test_thin_keeps_the_ends_and_what_is_asked() -> None:
    x = np.linspace(0, 1, 10_000)
    keep = thin(x, x**2, 50, keep=[1234])
    assert len(keep) <= 50 and keep[0] == 0 and keep[-1] == 9_999 and 1234 in keep
    assert thin([0, 1], [0, 1], 50) == [0, 1]


# --------------------------------------------------------------------------- the page


def test_the_page_is_valid_html_with_every_section_and_a_plot_each(
    evaluation: dict[str, Any],
) -> None:
    page = _parse(render_report(evaluation))
    assert set(SECTIONS) <= set(page.ids)
    svgs = [attrs for tag, attrs in page.tags if tag == "svg"]
    # ROC, PR, calibration, cost, one slice chart (one metric), one drift chart
    assert len(svgs) == 6
    titles = "".join(page.text)
    for title in ("ROC curve", "Precision-recall curve", "Calibration", "Cost over", "Drift of"):
        assert title in titles
    polylines = [attrs["points"] or "" for tag, attrs in page.tags if tag == "polyline"]
    assert all(0 < len(p.split()) <= 2 * MAX_POINTS for p in polylines)


def test_the_page_needs_nothing_from_outside(evaluation: dict[str, Any]) -> None:
    page = _parse(render_report(evaluation))
    tags = {tag for tag, _ in page.tags}
    assert not tags & {"script", "link", "img", "iframe", "object"}
    for _, attrs in page.tags:
        for key in ("src", "href"):
            assert not (attrs.get(key) or "#").startswith(("http", "//")), attrs


def test_user_text_is_escaped_everywhere(scored: tuple[np.ndarray, np.ndarray]) -> None:
    text = render_report(_evaluation(*scored, name=EVIL))
    page = _parse(text)
    assert "<script" not in text
    assert not [tag for tag, _ in page.tags if tag == "script"]
    assert "".join(page.text).count(EVIL) >= 4  # title, heading, slice, group names


def test_gates_and_model_card_show_what_failed(evaluation: dict[str, Any]) -> None:
    gates = {g["name"]: g for g in evaluation["gates"]}
    assert gates["recall"]["passed"] is False and gates["recall"]["threshold"] == 0.95
    card = evaluation["model_card"]
    assert card["intended_use"].startswith("Approve or decline")
    limits = " ".join(card["limitations"])
    assert "recall ≥ 0.95" in limits
    assert "young" in limits and "owners" not in limits  # only the significantly worse slice
    assert "noise σ = 0.25 × std: 14% of decisions change" in limits
    assert "KeyError" in limits  # an input-handling bug is a caveat
    assert "Demographic parity difference of 0.15" in limits and "Equalized" not in limits
    assert "income" in limits
    page = render_report(evaluation)
    assert 'class="badge fail"' in page and 'class="badge pass"' in page


def test_the_json_twin_round_trips(evaluation: dict[str, Any], tmp_path: Path) -> None:
    html, twin = tmp_path / "out" / "report.html", tmp_path / "out" / "report.json"
    write_report(evaluation, html, twin)
    loaded = json.loads(twin.read_text(encoding="utf-8"))
    assert loaded == evaluation and loaded["format"] == FORMAT
    assert html.read_text(encoding="utf-8") == render_report(loaded)
    assert sorted(p.name for p in html.parent.iterdir()) == ["report.html", "report.json"]


def test_numpy_values_and_non_finite_numbers_become_plain_json(
    scored: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    minimal = {
        "model": {"name": "m", "version": np.int64(1)},
        "data": {"ref": "d", "rows": 10},
        "task": "multiclass",
        "metrics": {"roc_auc": float("nan"), "accuracy": np.float64(0.5)},
    }
    write_report(minimal, tmp_path / "r.html", tmp_path / "r.json")
    loaded = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    assert loaded["metrics"] == {"roc_auc": None, "accuracy": 0.5}
    assert loaded["model"]["version"] == 1 and loaded["model_card"]["limitations"]
    page = _parse((tmp_path / "r.html").read_text(encoding="utf-8"))
    assert "".join(page.text).count("Not part of this evaluation.") == 4
    with pytest.raises(InvalidInputError, match=r"evaluation\['metrics'\]\['x'\] is a object"):
        render_report({**minimal, "metrics": {"x": object()}})
    with pytest.raises(InvalidInputError, match="lacks"):
        render_report({"model": {}})


def test_regression_shows_residuals_and_error_quantiles() -> None:
    spec = parse_spec("name: prices\ntask: regression\ntarget: price\n")
    rng = np.random.default_rng(1)
    y = rng.normal(100, 20, 2_000)
    predicted = y + rng.normal(0, 5, 2_000)
    evaluation = build_evaluation(spec, model={"name": "p", "version": 1}, data={}, y=y,
                                  scores=predicted)  # fmt: skip
    residuals = evaluation["curves"]["residuals"]
    assert sum(residuals["counts"]) == 2_000
    assert residuals["mean"] == pytest.approx(np.mean(y - predicted))
    quantiles = {q["quantile"]: q["abs_error"] for q in evaluation["curves"]["error_quantiles"]}
    assert quantiles[0.5] == pytest.approx(np.median(np.abs(y - predicted)))
    page = render_report(evaluation)
    parsed = _parse(page)
    assert [t for t, _ in parsed.tags].count("svg") == 1
    assert "Histogram of residual" in page and "Error quantiles" in page
    assert "ROC curve" not in page


def test_model_card_without_a_spec_says_so(evaluation: dict[str, Any]) -> None:
    card = model_card({**evaluation, "model_card": None})
    assert card["intended_use"].startswith("Not stated")
    assert card["metrics"] == {
        g["name"]: evaluation["metrics"][g["name"]] for g in evaluation["gates"]
    }
