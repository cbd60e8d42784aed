"""Tests for the project spec: models, defaults, errors with lines, hash, template."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from modelyard.errors import ConflictError, SpecError
from modelyard.spec import (
    DEFAULT_METRICS,
    METRICS,
    TASKS,
    MetricGoal,
    Spec,
    SpecIssue,
    Trigger,
    find_spec,
    load_spec,
    metrics_for,
    parse_duration,
    parse_spec,
    spec_hash,
)
from modelyard.spec_template import render_spec_template, write_spec_template

FIVE_LINES = """\
name: loans
task: binary          # binary | multiclass | regression | ranking
target: default
"""


def spec_text(extra: str = "", task: str = "binary") -> str:
    """A valid three-field spec followed by ``extra`` (dedented) from line 4 on."""
    return f"name: loans\ntask: {task}\ntarget: default\n" + textwrap.dedent(extra)


def only_issue(text: str) -> SpecIssue:
    """The single issue ``text`` produces (one mistake must give exactly one issue)."""
    with pytest.raises(SpecError) as caught:
        parse_spec(text, source="modelyard.yaml")
    issues = caught.value.issues
    assert len(issues) == 1, caught.value.message
    assert isinstance(issues[0], SpecIssue)
    return issues[0]


# --------------------------------------------------------------------------- defaults


def test_five_line_spec_loads_with_defaults() -> None:
    spec = parse_spec(FIVE_LINES)

    assert (spec.name, spec.task, spec.target) == ("loans", "binary", "default")
    assert [(g.name, g.threshold, g.direction) for g in spec.metrics] == [
        ("roc_auc", 0.7, "max"),
        ("f1", None, "max"),
    ]
    assert spec.costs.false_positive == spec.costs.false_negative == 1.0
    assert spec.release.strategy == "canary"
    assert spec.release.canary_steps == (5, 25, 50, 100)
    assert (spec.drift.psi, spec.drift.psi_warn, spec.drift.small_sample) == (0.25, 0.1, 1000)
    assert spec.slos.p99_latency_ms == 100.0
    assert spec.rollback.automatic is True
    assert [t.kind for t in spec.retraining.triggers] == ["drift", "manual"]
    assert spec.governance.approvals_required == 1
    assert spec.columns.features is None


@pytest.mark.parametrize("task", TASKS)
def test_default_metrics_apply_to_their_task(task: str) -> None:
    spec = parse_spec(spec_text(task=task))

    assert [g.name for g in spec.metrics] == [m["name"] for m in DEFAULT_METRICS[task]]
    assert all(task in METRICS[g.name].tasks for g in spec.metrics)


def test_ranking_metrics_get_a_default_cut_off() -> None:
    spec = parse_spec(spec_text("metrics:\n  - name: recall_at_k\n", task="ranking"))

    assert spec.metrics[0].k == 10
    assert spec.metrics[0].label == "recall@10"


def test_empty_section_means_its_defaults() -> None:
    spec = parse_spec(spec_text("columns:\ncosts:\nslices:\n"))

    assert spec.columns == parse_spec(FIVE_LINES).columns
    assert spec.costs.currency == "USD"
    assert spec.slices == ()


def test_explicit_empty_metrics_means_no_gates() -> None:
    assert parse_spec(spec_text("metrics: []\n")).metrics == ()


def test_spec_is_frozen() -> None:
    spec = parse_spec(FIVE_LINES)

    with pytest.raises(ValidationError):
        spec.target = "other"


def test_a_full_spec_loads() -> None:
    spec = parse_spec(
        spec_text(
            """\
            decision: Approve or refer a loan application.
            positive_class: 1
            columns:
              id: customer_id
              time: applied_at
              sensitive: [gender]
              pii: [email]
              exclude: [notes]
            metrics:
              - {name: recall, threshold: 0.8}
              - {name: ece, threshold: 0.05}
              - {name: p99_latency_ms, threshold: 50}
            costs: {false_positive: 5, false_negative: 100, currency: EUR}
            slices:
              - name: seniors
                where: "age >= 65 and `home region` == 'north'"
                goal: {name: recall, threshold: 0.7}
            release: {strategy: ab, ab_split: 0.1}
            retraining:
              triggers:
                - {kind: performance, metric: recall}
                - {kind: labels, min_labels: 5000}
                - {kind: schedule, cron: "0 3 * * 1"}
                - {kind: rule_change}
            governance:
              approvals_required: 2
              roles: {alice: approver, bob: scientist}
            """
        )
    )

    assert spec.positive_class == 1
    assert spec.columns.pii == ("email",)
    assert spec.slices[0].goal is not None and spec.slices[0].goal.threshold == 0.7
    assert spec.governance.roles["alice"] == "approver"
    assert spec.costs.optimal_threshold == pytest.approx(5 / 105)
    performance = spec.retraining.triggers[0]
    goal = spec.trigger_goal(performance)
    assert goal is not None and (goal.name, goal.threshold) == ("recall", 0.8)


# --------------------------------------------------------------------------- one mistake, one issue

MISTAKES = [
    pytest.param(
        "costs:\n  false_positive: 1\n  false_negative: lots\n",
        6,
        "costs.false_negative",
        ["expected a number", "'lots'"],
        id="wrong-type",
    ),
    pytest.param(
        "metrics:\n  - name: recall\n    treshold: 0.8\n",
        6,
        "metrics[0].treshold",
        ["unknown field; allowed: name, threshold, direction, k.", "Did you mean 'threshold'?"],
        id="unknown-field",
    ),
    pytest.param(
        "descripton: Loans\n",
        4,
        "descripton",
        ["allowed: name, description", "Did you mean 'description'?"],
        id="unknown-top-level-field",
    ),
    pytest.param(
        "psi: 0.3\n",
        4,
        "psi",
        ["Did you mean drift.psi?"],
        id="field-in-the-wrong-section",
    ),
    pytest.param(
        "columns:\n  sensitive: [gender, age\n  pii: []\n",
        6,
        "",
        ["invalid YAML", "expected ',' or ']'", "starts at line 5"],
        id="unclosed-bracket",
    ),
    pytest.param(
        "costs:\n  false_positive: 1\n   false_negative: 2\n",
        6,
        "",
        ["invalid YAML", "mapping values are not allowed here"],
        id="bad-indentation",
    ),
    pytest.param("costs:\n\tfalse_positive: 1\n", 5, "", ["not tabs"], id="tab-indentation"),
    pytest.param(
        "costs: {false_positive: 2}\ntarget: other\n",
        5,
        "target",
        ["duplicate key (first at line 3)"],
        id="duplicate-key",
    ),
    pytest.param(
        "metrics:\n  - name: mae\n",
        5,
        "metrics[0].name",
        ["'mae' does not apply to task 'binary'", "roc_auc"],
        id="metric-not-for-task",
    ),
    pytest.param(
        "metrics:\n  - name: rocauc\n",
        5,
        "metrics[0].name",
        ["unknown metric 'rocauc'", "Did you mean 'roc_auc'?"],
        id="unknown-metric",
    ),
    pytest.param(
        "metrics:\n  - name: recall\n    threshold: 80\n",
        6,
        "metrics[0].threshold",
        ["between 0 and 1", "0.8 for 80 %"],
        id="percentage-threshold",
    ),
    pytest.param(
        "metrics:\n  - name: recall\n    threshold: yes\n",
        6,
        "metrics[0].threshold",
        ["expected a number; got true"],
        id="boolean-is-not-a-number",
    ),
    pytest.param(
        "metrics:\n  - name: log_loss\n    direction: max\n",
        6,
        "metrics[0].direction",
        ["better when lower", "'min'"],
        id="contradicting-direction",
    ),
    pytest.param(
        "metrics:\n  - roc_auc\n",
        5,
        "metrics[0]",
        ["expected a mapping with fields name, threshold, direction, k", "'roc_auc'"],
        id="metric-as-string",
    ),
    pytest.param(
        "release:\n  canary_steps: [5, 50, 25]\n",
        5,
        "release.canary_steps",
        ["strictly increasing", "ending at 100", "[5, 50, 25]"],
        id="canary-not-increasing",
    ),
    pytest.param(
        "release:\n  canary_steps: [10, 50]\n",
        5,
        "release.canary_steps",
        ["ending at 100"],
        id="canary-not-ending-at-100",
    ),
    pytest.param(
        "release:\n  strategy: blue-green\n",
        5,
        "release.strategy",
        ["must be one of direct, canary, shadow, ab", "'blue-green'"],
        id="release-strategy",
    ),
    pytest.param(
        "release:\n  ab_split: 1.5\n",
        5,
        "release.ab_split",
        ["must be > 0 and < 1; got 1.5"],
        id="out-of-range",
    ),
    pytest.param(
        "release:\n  strategy: ab\n",
        4,
        "release.sticky_key",
        ["required for strategy 'ab'"],
        id="ab-without-sticky-key",
    ),
    pytest.param(
        "columns:\n  exclude: [notes, default]\n",
        5,
        "columns.exclude[1]",
        ["'default' is the target"],
        id="target-excluded",
    ),
    pytest.param(
        "columns:\n  id: default\n",
        5,
        "columns.id",
        ["the target cannot be the id column"],
        id="target-is-id",
    ),
    pytest.param(
        "columns:\n  features: [age, income]\n  exclude: [income]\n",
        5,
        "columns.features[1]",
        ["'income' is also in exclude"],
        id="feature-and-excluded",
    ),
    pytest.param(
        "slices:\n  - name: north\n    where: region = 'north'\n",
        6,
        "slices[0].where",
        ["not a valid pandas query expression"],
        id="slice-query",
    ),
    pytest.param(
        "slices:\n  - where: age > 65\n",
        5,
        "slices[0].name",
        ["required"],
        id="slice-without-name",
    ),
    pytest.param(
        "drift:\n  window: 1 day\n",
        5,
        "drift.window",
        ["duration", "e.g. 1d"],
        id="drift-window",
    ),
    pytest.param(
        "drift:\n  psi_warn: 0.5\n",
        5,
        "drift.psi_warn",
        ["must be below psi (0.25)"],
        id="warn-above-alert",
    ),
    pytest.param(
        "retraining:\n  triggers:\n    - kind: labels\n",
        6,
        "retraining.triggers[0].min_labels",
        ["required for a 'labels' trigger"],
        id="labels-trigger-without-count",
    ),
    pytest.param(
        "retraining:\n  triggers:\n    - kind: labels\n      threshold: 500\n",
        7,
        "retraining.triggers[0].threshold",
        ["does not apply to a 'labels' trigger; it takes min_labels (required)"],
        id="field-of-another-trigger-kind",
    ),
    pytest.param(
        "retraining:\n  triggers:\n    - kind: schedule\n",
        6,
        "retraining.triggers[0].every",
        ["one of every (e.g. 7d) or cron"],
        id="schedule-without-when",
    ),
    pytest.param(
        "retraining:\n  triggers:\n    - kind: performance\n      metric: recall\n",
        6,
        "retraining.triggers[0].threshold",
        ["metrics has no threshold for recall"],
        id="performance-trigger-without-threshold",
    ),
    pytest.param(
        "retraining:\n  triggers:\n    - kind: drfit\n",
        6,
        "retraining.triggers[0].kind",
        ["must be one of drift, performance, labels", "Did you mean 'drift'?"],
        id="trigger-kind",
    ),
    pytest.param(
        "governance:\n  roles:\n    alice: boss\n",
        6,
        "governance.roles.alice",
        ["must be one of viewer, scientist, approver, operator, admin"],
        id="role",
    ),
    pytest.param(
        "governance:\n  approvals_required: 9\n",
        5,
        "governance.approvals_required",
        ["must be ≥ 0 and ≤ 5; got 9"],
        id="approvals",
    ),
    pytest.param(
        "positive_class: [1]\n",
        4,
        "positive_class",
        ["a class label", "got a list"],
        id="positive-class-type",
    ),
    pytest.param(
        "costs: 5\n",
        4,
        "costs",
        ["expected a mapping with fields false_positive, false_negative, currency; got 5"],
        id="section-not-a-mapping",
    ),
]


@pytest.mark.parametrize(("extra", "line", "field", "fragments"), MISTAKES)
def test_each_mistake_gives_one_clear_issue(
    extra: str, line: int, field: str, fragments: list[str]
) -> None:
    issue = only_issue(spec_text(extra))

    assert (issue.file, issue.line, issue.field) == ("modelyard.yaml", line, field)
    for fragment in fragments:
        assert fragment in issue.message


@pytest.mark.parametrize(
    ("text", "line", "field", "fragment"),
    [
        ("name: loans\ntask: binary\n", 1, "target", "required: the column the model predicts"),
        ("name: loans\ntask: clasification\ntarget: y\n", 2, "task", "binary, multiclass"),
        ("name: My Loans\ntask: binary\ntarget: y\n", 1, "name", "Try 'my-loans'"),
        ("name: loans\ntask: binary\ntarget: no\n", 3, "target", "quote the text"),
        (
            "name: loans\ntask: regression\ntarget: y\npositive_class: 1\n",
            4,
            "positive_class",
            "only applies to task 'binary'",
        ),
    ],
)
def test_top_level_mistakes(text: str, line: int, field: str, fragment: str) -> None:
    issue = only_issue(text)

    assert (issue.line, issue.field) == (line, field)
    assert fragment in issue.message


def test_task_error_lists_every_allowed_value() -> None:
    issue = only_issue("name: loans\ntask: clasification\ntarget: y\n")

    assert issue.message == (
        "must be one of binary, multiclass, regression, ranking; got 'clasification'"
    )


@pytest.mark.parametrize(
    ("text", "fragment"),
    [("", "the file is empty"), ("# only a comment\n", "the file is empty")],
)
def test_empty_file(text: str, fragment: str) -> None:
    assert fragment in only_issue(text).message


@pytest.mark.parametrize(("text", "got"), [("- a\n- b\n", "got a list"), ("loans\n", "'loans'")])
def test_top_level_must_be_a_mapping(text: str, got: str) -> None:
    issue = only_issue(text)

    assert issue.line == 1
    assert "the top level must be a mapping" in issue.message and got in issue.message


def test_independent_mistakes_are_all_reported_in_line_order() -> None:
    text = spec_text("costs:\n  false_negative: lots\nrelease:\n  strategy: big-bang\n")

    with pytest.raises(SpecError) as caught:
        parse_spec(text, source="modelyard.yaml")

    assert [(i.line, i.field) for i in caught.value.issues] == [
        (5, "costs.false_negative"),
        (7, "release.strategy"),
    ]
    assert caught.value.message.startswith("2 problems in modelyard.yaml:\n")
    assert "  modelyard.yaml:7: release.strategy: must be one of" in caught.value.message


def test_issue_reads_file_line_field_message() -> None:
    issue = only_issue(spec_text("\n\n\nmetrics:\n  - name: recall\n    treshold: 0.8\n"))

    assert str(issue) == (
        "modelyard.yaml:9: metrics[0].treshold: unknown field; allowed: name, threshold, "
        "direction, k. Did you mean 'threshold'?"
    )


def test_error_message_summarises_and_says_what_next() -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec(spec_text("costs: {false_negative: lots}\n"), source="modelyard.yaml")

    lines = caught.value.message.splitlines()
    assert lines[0] == "1 problem in modelyard.yaml:"
    assert lines[1] == "  modelyard.yaml:4: costs.false_negative: expected a number; got 'lots'"
    assert "modelyard spec check" in lines[-1]
    assert caught.value.details == [str(caught.value.issues[0])]


def test_anchors_and_merge_keys_are_not_duplicates() -> None:
    spec = parse_spec(
        spec_text(
            """\
            slos: &limits
              p99_latency_ms: 80
            rollback:
              <<: *limits
              p99_latency_ms: 160
            """
        )
    )

    assert (spec.slos.p99_latency_ms, spec.rollback.p99_latency_ms) == (80, 160)


# --------------------------------------------------------------------------- files


def test_load_spec_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "modelyard.yaml"
    path.write_text(spec_text("costs: {false_negative: lots}\n"), encoding="utf-8")

    with pytest.raises(SpecError) as caught:
        load_spec(path)

    assert str(caught.value.issues[0]).startswith(f"{path}:4: costs.false_negative:")


def test_load_spec_missing_or_unreadable(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="does not exist"):
        load_spec(tmp_path / "nope.yaml")
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"name: \xff\xfe\n")
    with pytest.raises(SpecError, match="Cannot read spec file"):
        load_spec(binary)


def test_find_spec_in_the_start_folder(tmp_path: Path) -> None:
    (tmp_path / "modelyard.yaml").write_text(FIVE_LINES, encoding="utf-8")

    assert find_spec(tmp_path) == tmp_path / "modelyard.yaml"


def test_find_spec_defaults_to_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "modelyard.yaml").write_text(FIVE_LINES, encoding="utf-8")
    monkeypatch.chdir(tmp_path)

    assert find_spec().resolve() == (tmp_path / "modelyard.yaml").resolve()


def test_find_spec_explicit_wins(tmp_path: Path) -> None:
    (tmp_path / "modelyard.yaml").write_text(FIVE_LINES, encoding="utf-8")
    other = tmp_path / "other.yaml"
    other.write_text(FIVE_LINES, encoding="utf-8")

    assert find_spec(tmp_path, explicit=other) == other
    assert find_spec(explicit=tmp_path) == tmp_path / "modelyard.yaml"


def test_find_spec_explicit_must_exist(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="does not exist") as caught:
        find_spec(tmp_path, explicit=tmp_path / "missing.yaml")

    assert "--spec" in caught.value.message


def test_find_spec_says_what_to_do_when_nothing_is_found(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as caught:
        find_spec(tmp_path)

    assert "modelyard init" in caught.value.message and "--spec FILE" in caught.value.message


def test_find_spec_points_at_a_yml_file(tmp_path: Path) -> None:
    (tmp_path / "modelyard.yml").write_text(FIVE_LINES, encoding="utf-8")

    with pytest.raises(SpecError, match=r"rename it to modelyard\.yaml"):
        find_spec(tmp_path)


# --------------------------------------------------------------------------- version hash


def test_hash_ignores_comments_layout_and_spelled_out_defaults() -> None:
    plain = parse_spec(spec_text("costs: {false_positive: 2}\n"))
    styled = parse_spec(
        "# the loans project\n"
        "target:   default   # what we predict\n"
        "costs:\n"
        "  false_positive: 2.0\n"
        "  false_negative: 1\n"
        "  currency: USD\n"
        "task: binary\n"
        "name: loans\n"
        "metrics:\n"
        "  - {name: roc_auc, threshold: 0.70, direction: max}\n"
        "  - name: f1\n"
    )

    assert plain.content_hash == styled.content_hash == spec_hash(styled)
    assert len(plain.content_hash) == 64


def test_hash_changes_with_a_threshold() -> None:
    before = parse_spec(spec_text("metrics:\n  - {name: recall, threshold: 0.8}\n"))
    after = parse_spec(spec_text("metrics:\n  - {name: recall, threshold: 0.81}\n"))

    assert before.content_hash != after.content_hash


def test_hash_tells_label_types_apart() -> None:
    as_int = parse_spec(spec_text("positive_class: 1\n"))
    as_text = parse_spec(spec_text("positive_class: '1'\n"))

    assert as_int.content_hash != as_text.content_hash


FULL_SECTIONS = {
    "name": "loans",
    "task": "binary",
    "target": "default",
    "columns": {"id": "customer_id", "pii": ["email"], "exclude": ["notes"]},
    "costs": {"false_positive": 5.0, "false_negative": 50.0, "currency": "EUR"},
    "release": {"strategy": "canary", "step_seconds": 60, "canary_steps": [10, 100]},
    "drift": {"psi": 0.3, "window": "6h", "features": {"age": 0.5, "income": 0.4}},
    "governance": {"approvals_required": 2, "roles": {"alice": "approver", "bob": "admin"}},
}


def _shuffled(value: object, data: st.DataObject) -> object:
    if isinstance(value, dict):
        keys = data.draw(st.permutations(list(value)))
        return {key: _shuffled(value[key], data) for key in keys}
    return value


@settings(max_examples=50, deadline=None)
@given(data=st.data(), indent=st.sampled_from([2, 4]), flow=st.booleans())
def test_hash_is_invariant_under_key_order_and_style(
    data: st.DataObject, indent: int, flow: bool
) -> None:
    text = yaml.safe_dump(
        _shuffled(FULL_SECTIONS, data), sort_keys=False, indent=indent, default_flow_style=flow
    )

    assert parse_spec(text).content_hash == Spec.model_validate(FULL_SECTIONS).content_hash


@settings(max_examples=50, deadline=None)
@given(
    a=st.floats(min_value=0, max_value=1, allow_nan=False),
    b=st.floats(min_value=0, max_value=1, allow_nan=False),
)
def test_hash_separates_thresholds(a: float, b: float) -> None:
    def spec(threshold: float) -> Spec:
        return parse_spec(spec_text(f"metrics:\n  - {{name: recall, threshold: {threshold!r}}}\n"))

    assert (spec(a).content_hash == spec(b).content_hash) == (a == b)


# --------------------------------------------------------------------------- metric goals


@pytest.mark.parametrize(
    ("name", "threshold", "value", "passes"),
    [
        ("recall", 0.8, 0.8, True),
        ("recall", 0.8, 0.81, True),
        ("recall", 0.8, 0.79, False),
        ("p99_latency_ms", 100.0, 100.0, True),
        ("p99_latency_ms", 100.0, 99.0, True),
        ("p99_latency_ms", 100.0, 101.0, False),
        ("mae", 2.0, 2.5, False),
        ("recall", 0.8, math.nan, False),
        ("recall", None, 0.0, True),
    ],
)
def test_metric_goal_passes(name: str, threshold: float | None, value: float, passes: bool) -> None:
    assert MetricGoal(name=name, threshold=threshold).passes(value) is passes


def test_metric_goal_takes_its_direction_from_the_catalogue() -> None:
    assert MetricGoal(name="roc_auc").direction == "max"
    assert MetricGoal(name="ece").direction == "min"
    assert MetricGoal(name="recall", threshold=0.8).label == "recall ≥ 0.8"
    assert MetricGoal(name="error_rate", threshold=0.01).label == "error_rate ≤ 0.01"


def test_k_is_only_for_cut_off_metrics() -> None:
    with pytest.raises(ValidationError, match="k only applies"):
        MetricGoal(name="recall", k=5)


def test_catalogue_is_consistent() -> None:
    assert {"accuracy", "roc_auc", "ece", "mae", "ndcg_at_k", "p99_latency_ms"} <= set(METRICS)
    assert METRICS["mae"].direction == "min" and METRICS["r2"].direction == "max"
    assert all(METRICS[n].at_k == n.endswith("_at_k") for n in METRICS)
    for task in TASKS:
        assert "p99_latency_ms" in metrics_for(task)
    assert "mae" not in metrics_for("binary") and "roc_auc" not in metrics_for("regression")


def test_metric_goals_add_the_slos_not_overridden() -> None:
    spec = parse_spec(spec_text("metrics:\n  - {name: p99_latency_ms, threshold: 40}\n"))

    goals = {g.name: g.threshold for g in spec.metric_goals()}
    assert goals == {"p99_latency_ms": 40.0, "error_rate": 0.01}
    assert [g.name for g in spec.metric_goals("model")] == []
    assert spec.goal("error_rate") == MetricGoal(name="error_rate", threshold=0.01)


def test_slo_null_turns_it_off() -> None:
    spec = parse_spec(spec_text("slos: {error_rate: null, availability: 0.999}\n"))

    assert {g.name for g in spec.metric_goals("system")} == {"p99_latency_ms", "availability"}


def test_feature_columns() -> None:
    spec = parse_spec(
        spec_text("columns: {id: cid, time: ts, sensitive: [sex], pii: [email], exclude: [x]}\n")
    )
    columns = ["cid", "ts", "age", "sex", "email", "x", "default", "income"]

    assert spec.feature_columns(columns) == ["age", "income"]
    chosen = parse_spec(spec_text("columns: {features: [income]}\n"))
    assert chosen.feature_columns(columns) == ["income"]


def test_trigger_takes_only_its_own_fields() -> None:
    assert Trigger(kind="schedule", every="7d").every == "7d"
    with pytest.raises(ValidationError, match="does not apply to a 'manual' trigger"):
        Trigger(kind="manual", min_labels=3)


@pytest.mark.parametrize(("text", "seconds"), [("30s", 30), ("15m", 900), ("1d", 86400)])
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


# --------------------------------------------------------------------------- init template


@pytest.mark.parametrize("task", TASKS)
def test_template_round_trips_to_the_defaults(task: str) -> None:
    text = render_spec_template("loans", task, "default")

    assert parse_spec(text) == Spec(name="loans", task=task, target="default")  # type: ignore[arg-type]


@pytest.mark.parametrize("task", TASKS)
def test_template_spells_out_every_main_section(task: str) -> None:
    text = render_spec_template("loans", task, "default")
    data = yaml.safe_load(text)

    assert set(data) >= {
        "columns", "metrics", "costs", "slices", "slos", "release",
        "rollback", "drift", "retraining", "governance",
    }  # fmt: skip
    assert data["release"]["canary_steps"] == [5, 25, 50, 100]
    assert "# Task: binary | multiclass | regression | ranking." in text


@pytest.mark.parametrize("target", ["yes", "123", "null", "a: b", "# x", " padded", "naïve"])
def test_template_quotes_awkward_target_names(target: str) -> None:
    assert parse_spec(render_spec_template("loans", "binary", target)).target == target


@pytest.mark.parametrize(
    ("name", "task", "target", "fragment"),
    [
        ("My Loans", "binary", "y", "Try 'my-loans'"),
        ("loans", "classification", "y", "task must be one of"),
        ("loans", "binary", "", "target: must not be empty"),
    ],
)
def test_template_refuses_bad_inputs(name: str, task: str, target: str, fragment: str) -> None:
    with pytest.raises(SpecError, match="Cannot create a spec") as caught:
        render_spec_template(name, task, target)

    assert fragment in caught.value.message


def test_write_template_refuses_to_overwrite(tmp_path: Path) -> None:
    path = write_spec_template(tmp_path, "loans", "binary", "default")
    assert load_spec(path).name == "loans"

    with pytest.raises(ConflictError, match="already exists"):
        write_spec_template(tmp_path, "other", "regression", "price")
    assert load_spec(path).name == "loans"

    write_spec_template(tmp_path, "other", "regression", "price", overwrite=True)
    assert load_spec(path).task == "regression"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["modelyard.yaml"]


def test_write_template_creates_the_folder(tmp_path: Path) -> None:
    path = write_spec_template(tmp_path / "new" / "project", "loans", "ranking", "relevance")

    assert path == tmp_path / "new" / "project" / "modelyard.yaml"
    assert find_spec(path.parent) == path


def test_exponent_numbers_read_as_numbers() -> None:
    spec = parse_spec(spec_text("drift: {ks_pvalue: 1e-3, chi2_pvalue: 2.5E-2}\n"))

    assert (spec.drift.ks_pvalue, spec.drift.chi2_pvalue) == (0.001, 0.025)


def test_explicit_nulls_are_the_defaults() -> None:
    text = "retraining:\n  triggers:\n    - {kind: manual, metric: null, every: null, cron: null}\n"

    assert parse_spec(spec_text(text)).retraining.triggers == (Trigger(kind="manual"),)


@pytest.mark.parametrize("task", TASKS)
def test_a_dumped_spec_validates_back_to_itself(task: str) -> None:
    spec = parse_spec(spec_text(task=task))
    full = Spec.model_validate(FULL_SECTIONS)

    assert Spec.model_validate_json(spec.model_dump_json()) == spec
    assert Spec.model_validate(full.model_dump()) == full
    assert Spec.model_validate_json(full.model_dump_json()).content_hash == full.content_hash


def test_bad_cron_and_duration() -> None:
    cron = "retraining:\n  triggers:\n    - {kind: schedule, cron: every monday}\n"
    every = "retraining:\n  triggers:\n    - {kind: schedule, every: weekly}\n"

    assert "cron expression of 5 fields" in only_issue(spec_text(cron)).message
    assert "must be a duration" in only_issue(spec_text(every)).message


def test_monitoring_section_defaults_keep_the_spec_version_and_rules_are_checked() -> None:
    base = "name: x\ntask: binary\ntarget: y\n"
    plain = parse_spec(base)
    spelled = parse_spec(base + "monitoring:\n  log: {sample_rate: 1.0}\n")
    assert plain.content_hash == spelled.content_hash
    sampled = parse_spec(base + "monitoring:\n  log: {sample_rate: 0.5}\n")
    assert sampled.content_hash != plain.content_hash
    with pytest.raises(SpecError) as raised:
        parse_spec(
            base + "monitoring:\n  alerts: [{name: a, metric: error_rate, threshold: 0.1}]\n"
            "  on_call: {critical: [pager]}\n"
        )
    assert "unknown channel 'pager'" in str(raised.value)
    with pytest.raises(SpecError, match="needs a url"):
        parse_spec(base + "monitoring:\n  channels: {hook: {kind: slack}}\n")
