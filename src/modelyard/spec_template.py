"""The commented ``modelyard.yaml`` that ``modelyard init`` writes.

Every main section spells out its defaults, with a comment on what each field
means and which values are allowed, so users see what they can edit. The
template parses to exactly the spec its three inputs give (a test checks it),
so spelling out the defaults does not change the spec version.
"""

from __future__ import annotations

import json
import os
import tempfile
import textwrap
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from modelyard.errors import ConflictError, SpecError
from modelyard.spec import (
    DEFAULT_K,
    DEFAULT_METRICS,
    METRICS,
    SPEC_FILENAME,
    TASKS,
    metrics_for,
    parse_spec,
)

__all__ = ["render_spec_template", "write_spec_template"]

_HEADER = """\
# modelyard.yaml: the contract of project {name}.
# Evaluation, promotion, release, rollback and retraining all read the
# thresholds below as gates. Check this file with `modelyard spec check`.
# The spec version is a hash of the values: comments and layout do not
# change it, any edited value does.

# Project name: lowercase letters, digits, '-' and '_' (1-64 characters).
name: {name}
# Optional: what the project is, and the business decision the model supports.
# description: Predicts which loans default within 12 months.
# decision: Approve, or refer the application to an underwriter.
# Task: binary | multiclass | regression | ranking.
task: {task}
# The column the model predicts.
target: {target}
"""

_POSITIVE_CLASS = """\
# The label that counts as positive, e.g. 1 or "yes"; default: the larger label.
# positive_class: 1
"""

_COLUMNS = """
# Column roles; names must match the data set's columns.
columns:
  id: null          # row identifier, never a feature, e.g. customer_id
  time: null        # event time: time-based splits and drift windows
  group: null       # rows that belong together: grouped splits; the query for ranking
  sensitive: []     # attributes for fairness checks, e.g. [gender, age_band]
  pii: []           # personal data: dropped or hashed in prediction logs
  features: null    # feature columns; null = all but the target and the ones named here
  exclude: []       # columns never used as features
"""

_REST = """
# Business cost of each kind of error (binary tasks); sets the decision threshold.
costs:
  false_positive: 1.0
  false_negative: 1.0
  currency: USD

# Slices evaluated and monitored on their own: a name, a pandas query, the
# minimum number of rows, and optionally a goal. For example:
#   - name: seniors
#     where: "age >= 65 and region == 'north'"
#     min_size: 30
#     goal: {name: recall, threshold: 0.7}
slices: []

# Service-level objectives of the deployed model; null turns one off.
slos:
  p99_latency_ms: 100.0
  error_rate: 0.01
  availability: null             # e.g. 0.999
  cost_per_1k_predictions: null
  throughput_rps: null

# How a new version reaches traffic. strategy: direct | canary | shadow | ab.
release:
  strategy: canary
  canary_steps: [5, 25, 50, 100] # % of traffic per step: increasing, ending at 100
  step_seconds: 300              # time at each step before the next one
  sticky_key: null               # ab: field that keeps a caller in one arm; default columns.id
  ab_split: 0.5                  # ab: share of traffic for the challenger, between 0 and 1

# Roll back when any limit is breached over the window; null turns one off.
rollback:
  p99_latency_ms: 250.0
  error_rate: 0.05
  max_prediction_shift: 0.1      # abnormal outputs: change in positive rate or mean score
  window_seconds: 300
  min_requests: 100              # never judge on fewer requests
  automatic: true                # false: alert only, a person rolls back

# Drift against the training baseline. Below small_sample rows the tests decide
# (KS and chi-square p-values); from small_sample on, the distances (PSI, JS,
# Wasserstein). window is a duration: 30m, 6h, 1d, 2w.
drift:
  psi: 0.25
  psi_warn: 0.1
  js: 0.1
  wasserstein: 0.1
  ks_pvalue: 0.01
  chi2_pvalue: 0.01
  small_sample: 1000
  window: 1d
  dataset_share: 0.5             # the data set drifts when this share of features drift
  features: {}                   # per-feature PSI limits, e.g. {income: 0.4}

# When to retrain. kind: drift | performance | labels | schedule | rule_change | manual.
# For example:
#   - {kind: performance, metric: {metric}, threshold: {threshold}}
#   - {kind: labels, min_labels: 5000}
#   - {kind: schedule, every: 7d}      # or cron: "0 3 * * 1"
#   - {kind: rule_change}              # fires when this spec's values change
retraining:
  triggers:
    - kind: drift
    - kind: manual
  use_feedback_labels: true      # fold labelled production traffic into the next training set

# Cleaning steps, fitted on the training rows only and replayed identically when
# serving. step: impute | deduplicate | clip_outliers | drop_outliers |
# standardise_units | normalise_categories. For example:
# cleaning:
#   - {step: normalise_categories, columns: [city], rare_min_share: 0.01}
#   - {step: impute, columns: [income], strategy: median, add_indicator: true}

# How candidates are trained (defaults shown). imbalance: none | class_weight |
# oversample | undersample (training rows only). families: a subset of majority,
# mean, logistic, linear, tree, lightgbm, hist_gb, mlp.
# training:
#   imbalance: none
#   seed: 42
#   search: {method: tpe, trials: 20, folds: 3, engine: local}

# Who may do what. Roles: viewer | scientist | approver | operator | admin.
# The author of a model can never approve it.
governance:
  approvals_required: 1          # 0 to 5
  roles: {}                      # user: role, e.g. {alice: approver, bob: scientist}
  allow_override: true           # an admin may override a failed gate (kept in the audit log)
"""


def _scalar(value: str) -> str:
    """``value`` as a YAML scalar that reads back as the same string (quoted if needed)."""
    try:
        plain = yaml.safe_load(value) == value and value == value.strip()
    except yaml.YAMLError:
        plain = False
    return value if plain and value else json.dumps(value)


def _comment(text: str) -> str:
    return textwrap.fill(text, width=88, initial_indent="# ", subsequent_indent="#   ") + "\n"


def _metrics_section(task: str) -> str:
    model = [n for n in metrics_for(task) if METRICS[n].kind == "model"]
    system = [n for n in metrics_for(task) if METRICS[n].kind == "system"]
    lines = [
        "\n# Success metrics. A threshold makes a metric a gate; direction (higher or\n",
        "# lower is better) comes from the catalogue. k is the cut-off of @k metrics.\n",
        _comment(f"Model metrics for {task}: {', '.join(model)}."),
        _comment(f"System metrics: {', '.join(system)}."),
        "metrics:\n",
    ]
    for goal in DEFAULT_METRICS[task]:
        lines.append(f"  - name: {goal['name']}\n")
        if METRICS[goal["name"]].at_k:
            lines.append(f"    k: {goal.get('k', DEFAULT_K)}\n")
        threshold = goal.get("threshold")
        if threshold is None:
            lines.append(
                "    threshold: null            # reported only; a number makes it a gate\n"
            )
        else:
            lines.append(f"    threshold: {threshold!r}\n")
    return "".join(lines)


def _example_goal(task: str) -> dict[str, Any]:
    gated = [g for g in DEFAULT_METRICS[task] if g.get("threshold") is not None]
    goal = dict(gated[0]) if gated else {"name": DEFAULT_METRICS[task][0]["name"], "threshold": 0.5}
    if goal["name"] == "r2":
        goal["threshold"] = 0.5
    return goal


def render_spec_template(name: str, task: str, target: str) -> str:
    """A commented ``modelyard.yaml`` for a new project; raises ``SpecError`` on bad inputs."""
    if task not in TASKS:
        raise SpecError(
            f"Cannot create a spec: task must be one of {', '.join(TASKS)}; got {task!r}."
        )
    example = _example_goal(task)
    text = (
        _HEADER.format(name=_scalar(name), task=task, target=_scalar(target))
        + (_POSITIVE_CLASS if task == "binary" else "")
        + _COLUMNS
        + _metrics_section(task)
        + _REST.replace("{metric}", example["name"]).replace(
            "{threshold}", repr(example["threshold"])
        )
    )
    try:
        parse_spec(text, source="modelyard init")
    except SpecError as exc:  # the inputs are the only variable part
        issues = [replace(issue, line=None) for issue in exc.issues]
        details = "; ".join(f"{i.field}: {i.message}" for i in issues)
        raise SpecError(f"Cannot create a spec: {details}", issues=issues) from None
    return text


def write_spec_template(
    folder: Path, name: str, task: str, target: str, overwrite: bool = False
) -> Path:
    """Write ``folder/modelyard.yaml`` from the template and return its path.

    Refuses with ``ConflictError`` when the file exists, unless ``overwrite``.
    The file appears whole or not at all (written aside, then renamed).
    """
    text = render_spec_template(name, task, target)
    path = Path(folder) / SPEC_FILENAME
    if path.exists() and not overwrite:
        raise ConflictError(
            f"{path} already exists. Edit it, or remove it to write a fresh template."
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".modelyard-", suffix=".yaml.tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        Path(tmp).chmod(0o644)  # mkstemp makes it private; a spec is a shared project file
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
