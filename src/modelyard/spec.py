"""The project spec, ``modelyard.yaml``: the contract every stage reads.

Object model (every model is a frozen pydantic model that forbids unknown fields)::

    Spec                 name, description, decision, task, target, positive_class
    ├── columns          Columns: id, time, group, sensitive, pii, features, exclude
    ├── metrics          [MetricGoal]: name (a key of METRICS), threshold, direction, k
    ├── costs            Costs: false_positive, false_negative, currency
    ├── slices           [Slice]: name, where, min_size, goal (a MetricGoal)
    ├── slos             Slos: p99_latency_ms, error_rate, availability, ...
    ├── release          ReleasePolicy: strategy, canary_steps, step_seconds, sticky_key, ab_split
    ├── rollback         RollbackCriteria: p99_latency_ms, error_rate, max_prediction_shift, ...
    ├── drift            DriftThresholds: psi, psi_warn, js, wasserstein, ks_pvalue, ...
    ├── retraining       Retraining: triggers [Trigger: kind + the fields that kind needs]
    ├── governance       Governance: approvals_required, roles, allow_override
    ├── monitoring       Monitoring: log (PredictionLogSettings), alerts [AlertRule],
    │                    cooldown, channels {name: Channel}, on_call {severity: [channel]}
    └── training         Training: imbalance, target_ratio, seed, families,
                         search (SearchSettings: method, trials, folds, engine)

``METRICS`` is the one catalogue of metric names: direction (higher or lower is
better), kind (model or system), the tasks a metric applies to and its sensible
range. Evaluation, promotion, release and rollback read thresholds from here
and from ``Spec.metric_goals()``. ``MODEL_FAMILIES`` is the catalogue of model
family names and the tasks each can learn (``modelyard.train.families`` holds
their implementations; a test keeps the two in step).

``load_spec`` / ``parse_spec`` keep YAML line numbers, so every problem is
reported as a ``SpecIssue`` (file, line, field, what is allowed) inside one
``SpecError``; one mistake gives exactly one issue (``modelyard.spec_issues``
does the translation). Building a model directly in Python raises pydantic's
``ValidationError`` instead. ``render_spec_template`` / ``write_spec_template``
(``modelyard.spec_template``) give the commented file ``modelyard init`` writes.

Versioning: ``Spec.content_hash`` (also ``spec_hash(spec)``) is the sha256 of
the canonical JSON of the *validated* model, defaults filled in and keys
sorted. Comments, key order, formatting and spelling out a default do not
change it; any change of meaning does, and so would a new modelyard release
that changes a default the spec relies on. Runs and models record it as the
spec version. A ``training`` section left at its defaults is not part of the
hash, so specs written before the section existed keep their version.
"""

from __future__ import annotations

import ast
import hashlib
import itertools
import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Literal, Self, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    Strict,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from modelyard.errors import SpecError
from modelyard.spec_catalogue import (
    CLASSIFICATION_TASKS,
    DEFAULT_K,
    DEFAULT_METRICS,
    METRICS,
    MODEL_FAMILIES,
    SPEC_FILENAME,
    TASKS,
    Column,
    Direction,
    Fraction,
    Integer,
    MetricInfo,
    NonNegative,
    Number,
    OpenFraction,
    Positive,
    Role,
    Task,
    TriggerKind,
    metrics_for,
    parse_duration,
)
from modelyard.spec_issues import (
    Problem,
    SpecIssue,
    did_you_mean,
    raise_problems,
    read_yaml,
    show,
    spec_error,
    validation_issues,
)

__all__ = [
    "DEFAULT_K",
    "DEFAULT_METRICS",
    "METRICS",
    "MODEL_FAMILIES",
    "SPEC_FILENAME",
    "TASKS",
    "Columns",
    "Costs",
    "DriftThresholds",
    "FairnessLimits",
    "Governance",
    "MetricGoal",
    "MetricInfo",
    "ReleasePolicy",
    "Retraining",
    "RollbackCriteria",
    "SearchSettings",
    "Slice",
    "Slos",
    "Spec",
    "SpecIssue",
    "Training",
    "Trigger",
    "find_spec",
    "load_spec",
    "metrics_for",
    "parse_duration",
    "parse_spec",
    "render_spec_template",
    "spec_hash",
    "write_spec_template",
]

# --------------------------------------------------------------------------- helpers


def _known_metric(name: str | None) -> str | None:
    if name is not None and name not in METRICS:
        raise ValueError(
            f"unknown metric {name!r}; known metrics: {', '.join(METRICS)}."
            + did_you_mean(name, METRICS)
        )
    return name


def _range_problem(name: str, value: float) -> list[Problem]:
    """A threshold outside the metric's range (often a percentage written for a fraction)."""
    info = METRICS[name]
    if (info.low is not None and value < info.low) or (info.high is not None and value > info.high):
        low = "-inf" if info.low is None else f"{info.low:g}"
        high = "inf" if info.high is None else f"{info.high:g}"
        hint = " (write fractions, e.g. 0.8 for 80 %)" if info.high == 1.0 and value > 1 else ""
        return [(("threshold",), f"{name} lies between {low} and {high}; got {value:g}{hint}")]
    return []


def _class_label(value: Any) -> int | str | bool:
    if isinstance(value, bool | int) or (isinstance(value, str) and value):
        return value
    raise PydanticCustomError(
        "class_label",
        "must be a class label: a string, an integer or true/false; got {got}",
        {"got": show(value)},
    )


ClassLabel = Annotated[
    int | str | bool,
    PlainValidator(_class_label),
    WithJsonSchema({"type": ["integer", "string", "boolean"]}),
]


class _Model(BaseModel):
    """Base of every spec model: frozen, strict about unknown fields, finite numbers."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _empty_section_means_default(cls, data: Any) -> Any:
        # `columns:` with nothing under it (YAML null) means "the defaults".
        if isinstance(data, dict):
            fields = cls.model_fields
            return {
                k: v
                for k, v in data.items()
                if not (v is None and k in fields and fields[k].default_factory is not None)
            }
        return data


# --------------------------------------------------------------------------- models


class MetricGoal(_Model):
    """A metric to report; a gate when it has a threshold."""

    name: str = Field(description=f"a metric name, one of {', '.join(METRICS)}")
    threshold: Number | None = None
    direction: Direction | None = None
    k: Annotated[int, Strict(), Field(ge=1)] | None = None

    @model_validator(mode="before")
    @classmethod
    def _fill_from_catalogue(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("name") in METRICS:
            info = METRICS[data["name"]]
            data = dict(data)
            if data.get("direction") is None:
                data["direction"] = info.direction
            if info.at_k and data.get("k") is None:
                data["k"] = DEFAULT_K
        return data

    _check_name = field_validator("name")(_known_metric)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        info = METRICS[self.name]
        problems: list[Problem] = []
        if self.direction != info.direction:
            better = "higher" if info.direction == "max" else "lower"
            msg = f"{self.name} is better when {better}: remove direction or set it to "
            problems.append((("direction",), f"{msg}{info.direction!r}"))
        if self.k is not None and not info.at_k:
            at_k = ", ".join(n for n, i in METRICS.items() if i.at_k)
            problems.append((("k",), f"k only applies to the @k metrics ({at_k}); remove it"))
        if self.threshold is not None:
            problems += _range_problem(self.name, self.threshold)
        raise_problems(problems)
        return self

    @property
    def info(self) -> MetricInfo:
        """The catalogue entry of this metric."""
        return METRICS[self.name]

    @property
    def kind(self) -> Literal["model", "system"]:
        """``"model"`` for a quality metric, ``"system"`` for latency, cost, errors..."""
        return self.info.kind

    @property
    def label(self) -> str:
        """A short human label, e.g. ``recall ≥ 0.8`` or ``ndcg@10``."""
        name = self.name.replace("_at_k", f"@{self.k}") if self.info.at_k else self.name
        if self.threshold is None:
            return name
        return f"{name} {'≥' if self.direction == 'max' else '≤'} {self.threshold:g}"

    def passes(self, value: float) -> bool:
        """True when ``value`` meets the goal; always True without a threshold.

        ``max`` goals pass at or above the threshold, ``min`` goals at or below
        it. NaN never passes a threshold.
        """
        if self.threshold is None:
            return True
        if math.isnan(value):
            return False
        return value >= self.threshold if self.direction == "max" else value <= self.threshold


class Columns(_Model):
    """The roles of the data set's columns; see ``Spec.feature_columns`` for the features."""

    id: Column | None = None
    time: Column | None = None
    group: Column | None = None
    sensitive: tuple[Column, ...] = Field(default_factory=tuple)
    pii: tuple[Column, ...] = Field(default_factory=tuple)
    features: Annotated[tuple[Column, ...], Field(min_length=1)] | None = None
    exclude: tuple[Column, ...] = Field(default_factory=tuple)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        problems: list[Problem] = []
        for name in ("sensitive", "pii", "features", "exclude"):
            seen: set[str] = set()
            for i, col in enumerate(getattr(self, name) or ()):
                if col in seen:
                    problems.append(((name, i), f"{col!r} is listed twice; list each column once"))
                seen.add(col)
        for i, col in enumerate(self.features or ()):
            if col in self.exclude:
                msg = f"{col!r} is also in exclude; remove it from one of the two lists"
                problems.append((("features", i), msg))
            elif col == self.id:
                problems.append((("features", i), f"{col!r} is the id column, never a feature"))
        raise_problems(problems)
        return self


class Costs(_Model):
    """Business cost of each kind of error (binary tasks), in ``currency``."""

    false_positive: NonNegative = 1.0
    false_negative: NonNegative = 1.0
    currency: str = Field(default="USD", min_length=1)

    @property
    def optimal_threshold(self) -> float:
        """The probability above which predicting positive costs least (calibrated scores)."""
        total = self.false_positive + self.false_negative
        return 0.5 if total == 0 else self.false_positive / total


def _check_query(text: str) -> str:
    # pandas' query syntax is Python's expression syntax, plus `quoted names` and @variables.
    code = re.sub(r"`[^`]*`", "_column", text).replace("@", "")
    try:
        ast.parse(code.strip(), mode="eval")
    except SyntaxError as exc:
        raise ValueError(
            f"not a valid pandas query expression ({exc.msg}); write e.g. "
            f"\"region == 'north' and age >= 65\"; got {text!r}"
        ) from None
    return text


class Slice(_Model):
    """A named subset of rows to evaluate and monitor separately."""

    name: str = Field(min_length=1, description="the slice's name, e.g. seniors")
    where: str = Field(
        min_length=1,
        description="a pandas query expression, e.g. \"age >= 65 and region == 'north'\"",
    )
    min_size: Annotated[int, Strict(), Field(ge=1)] = 30
    goal: MetricGoal | None = None

    _check_where = field_validator("where")(_check_query)


class Slos(_Model):
    """Service-level objectives of the deployed model; ``null`` turns one off."""

    p99_latency_ms: Positive | None = 100.0
    error_rate: Fraction | None = 0.01
    availability: Annotated[float, Strict(), Field(gt=0, le=1)] | None = None
    cost_per_1k_predictions: NonNegative | None = None
    throughput_rps: Positive | None = None

    def goals(self) -> tuple[MetricGoal, ...]:
        """Each set objective as a system ``MetricGoal``."""
        return tuple(
            MetricGoal(name=name, threshold=value)
            for name, value in self.model_dump().items()
            if value is not None
        )


class ReleasePolicy(_Model):
    """How a new version reaches traffic (canary steps, shadow, sticky A/B)."""

    strategy: Literal["direct", "canary", "shadow", "ab"] = "canary"
    canary_steps: tuple[Integer, ...] = (5, 25, 50, 100)
    step_seconds: Annotated[int, Strict(), Field(ge=1)] = 300
    sticky_key: Column | None = None
    ab_split: OpenFraction = 0.5

    @field_validator("canary_steps")
    @classmethod
    def _steps(cls, steps: tuple[int, ...]) -> tuple[int, ...]:
        increasing = all(a < b for a, b in itertools.pairwise(steps))
        if not steps or not increasing or steps[0] < 1 or steps[-1] != 100:
            raise ValueError(
                "must be traffic percentages from 1 to 100, strictly increasing and ending at "
                f"100, e.g. [5, 25, 50, 100]; got {list(steps)}"
            )
        return steps


class RollbackCriteria(_Model):
    """When a release is rolled back: any limit breached over ``window_seconds``.

    ``max_prediction_shift`` catches abnormal outputs: for classification the
    absolute change in positive rate (or mean score) against the previous
    version; for regression and ranking the change in mean prediction in
    standard deviations of the previous version's predictions.
    """

    p99_latency_ms: Positive | None = 250.0
    error_rate: Fraction | None = 0.05
    max_prediction_shift: NonNegative | None = 0.1
    window_seconds: Annotated[int, Strict(), Field(ge=1)] = 300
    min_requests: Annotated[int, Strict(), Field(ge=1)] = 100
    automatic: Annotated[bool, Strict()] = True


class DriftThresholds(_Model):
    """When a feature or the predictions count as drifted.

    Below ``small_sample`` rows the statistical tests decide (KS for numbers,
    chi-square for categories, drift when p < the p-value); at or above it
    the distances do (PSI, Jensen-Shannon, Wasserstein normalised by the
    baseline's standard deviation). ``features`` overrides the PSI limit per
    feature; the data set drifts when at least ``dataset_share`` of its
    features drift.
    """

    psi: Positive = 0.25
    psi_warn: Positive = 0.1
    js: Annotated[float, Strict(), Field(gt=0, le=1)] = 0.1
    wasserstein: Positive = 0.1
    ks_pvalue: OpenFraction = 0.01
    chi2_pvalue: OpenFraction = 0.01
    small_sample: Annotated[int, Strict(), Field(ge=1)] = 1000
    window: str = "1d"
    dataset_share: Annotated[float, Strict(), Field(gt=0, le=1)] = 0.5
    features: dict[Column, Positive] = Field(default_factory=dict)

    @field_validator("window")
    @classmethod
    def _window(cls, value: str) -> str:
        parse_duration(value)
        return value

    @model_validator(mode="after")
    def _warn_below_alert(self) -> Self:
        if self.psi_warn >= self.psi:
            raise_problems(
                [(("psi_warn",), f"must be below psi ({self.psi:g}); got {self.psi_warn:g}")]
            )
        return self

    @property
    def window_seconds(self) -> int:
        """The drift window in seconds."""
        return parse_duration(self.window)


_TRIGGER_FIELDS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "drift": ("threshold",),
        "performance": ("metric", "threshold"),
        "labels": ("min_labels",),
        "schedule": ("every", "cron"),
        "rule_change": (),
        "manual": (),
    }
)
_TRIGGER_NEEDS = {
    "performance": ("metric", "the metric to watch, e.g. roc_auc"),
    "labels": ("min_labels", "how many new labels start a retraining, e.g. 5000"),
}


def _check_cron(value: str | None) -> str | None:
    if value is None:
        return None
    parts = value.split()
    if len(parts) != 5 or not all(re.fullmatch(r"[\w*/,\-?]+", p) for p in parts):
        raise ValueError(
            "must be a cron expression of 5 fields (minute hour day month weekday), "
            f"e.g. '0 3 * * 1'; got {value!r}"
        )
    return value


class Trigger(_Model):
    """One reason to retrain. Each kind takes only its own fields:

    drift (threshold: share of drifted features, default drift.dataset_share),
    performance (metric; threshold, default the metric's goal), labels
    (min_labels), schedule (every or cron), rule_change (fires when the spec's
    content hash changes), manual.
    """

    kind: TriggerKind = Field(description=f"one of {', '.join(get_args(TriggerKind))}")
    metric: str | None = None
    threshold: Number | None = None
    min_labels: Annotated[int, Strict(), Field(ge=1)] | None = None
    every: str | None = None
    cron: str | None = None

    _check_metric = field_validator("metric")(_known_metric)
    _check_cron = field_validator("cron")(_check_cron)

    @field_validator("every")
    @classmethod
    def _every(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)
        return value

    @model_validator(mode="after")
    def _fields_for_kind(self) -> Self:
        allowed = _TRIGGER_FIELDS[self.kind]
        needed, what = _TRIGGER_NEEDS.get(self.kind, ("", ""))
        missing = bool(needed) and getattr(self, needed) is None
        takes = ", ".join(f"{n} (required)" if n == needed else n for n in allowed)
        msg = f"does not apply to a {self.kind!r} trigger; it takes {takes or 'no other field'}"
        problems: list[Problem] = [
            ((name,), msg)
            for name in type(self).model_fields
            if name != "kind" and name not in allowed and getattr(self, name) is not None
        ]
        if missing and not problems:  # a misplaced field already explains the missing one
            problems.append(((needed,), f"required for a {self.kind!r} trigger: {what}"))
        if self.kind == "schedule" and (self.every is None) == (self.cron is None):
            msg = "a 'schedule' trigger takes one of every (e.g. 7d) or cron (e.g. '0 3 * * 1')"
            problems.append((("every",), msg))
        if self.kind == "drift" and self.threshold is not None and not 0 < self.threshold <= 1:
            msg = f"the share of drifted features, in (0, 1]; got {self.threshold:g}"
            problems.append((("threshold",), msg))
        if self.kind == "performance" and self.metric and self.threshold is not None:
            problems += _range_problem(self.metric, self.threshold)
        raise_problems(problems)
        return self


class Retraining(_Model):
    """When to retrain, and whether production feedback labels join the next training set."""

    triggers: tuple[Trigger, ...] = Field(
        default_factory=lambda: (Trigger(kind="drift"), Trigger(kind="manual"))
    )
    use_feedback_labels: Annotated[bool, Strict()] = True


class Governance(_Model):
    """Who may do what; promotions need approvals (never from the model's author)."""

    approvals_required: Annotated[int, Strict(), Field(ge=0, le=5)] = 1
    roles: dict[Annotated[str, Field(min_length=1)], Role] = Field(default_factory=dict)
    allow_override: Annotated[bool, Strict()] = True


class FairnessLimits(_Model):
    """Limits on fairlearn's group measures, per sensitive column; unset means not gated.

    Differences are "at most" limits (max − min across groups); ratios are
    "at least" limits (min / max).
    """

    demographic_parity_difference: Fraction | None = None
    demographic_parity_ratio: Fraction | None = None
    equalized_odds_difference: Fraction | None = None
    equalized_odds_ratio: Fraction | None = None

    def limits(self) -> dict[str, tuple[str, float]]:
        """``{measure: (direction, limit)}`` for every limit that is set."""
        return {
            name: ("min" if name.endswith("difference") else "max", value)
            for name, value in self.model_dump().items()
            if value is not None
        }


Severity = Literal["info", "warning", "critical"]
SEVERITIES: tuple[str, ...] = get_args(Severity)


class PredictionLogSettings(_Model):
    """What the inference server logs of each prediction, and for how long.

    Columns named in ``columns.pii`` never reach disk as sent: ``pii: hash``
    stores a keyed hash (HMAC-SHA256 with the key in ``MODELYARD_PII_KEY``, or
    one generated into the project's ``.modelyard`` folder), ``pii: drop``
    leaves them out.
    """

    enabled: Annotated[bool, Strict()] = True
    sample_rate: Annotated[float, Strict(), Field(gt=0, le=1)] = 1.0
    pii: Literal["hash", "drop"] = "hash"
    flush_rows: Annotated[int, Strict(), Field(ge=1)] = 10_000
    flush_seconds: Positive = 5.0
    buffer_rows: Annotated[int, Strict(), Field(ge=1)] = 200_000
    retention: str = "30d"

    @field_validator("retention")
    @classmethod
    def _retention(cls, value: str) -> str:
        parse_duration(value)
        return value


class AlertRule(_Model):
    """Alert when ``metric`` over the last ``window`` is above (or below) ``threshold``.

    ``metric``: a system metric (``error_rate``, ``p99_latency_ms``,
    ``throughput_rps``), a drift measure (``drift_share``, ``prediction_drift``,
    ``drift:<feature>``), or a model metric realised on labelled feedback
    (``roc_auc``, ``recall``, … from the metric catalogue). Windows with fewer
    than ``min_samples`` predictions (or labels) are not judged.
    """

    name: str
    metric: str
    threshold: Annotated[float, Strict()]
    direction: Literal["above", "below"] = "above"
    window: str = "1h"
    min_samples: Annotated[int, Strict(), Field(ge=1)] = 100
    severity: Severity = "warning"

    @field_validator("window")
    @classmethod
    def _window(cls, value: str) -> str:
        parse_duration(value)
        return value


class Channel(_Model):
    """Where an alert goes: a JSON webhook, a Slack-compatible webhook, or e-mail (SMTP)."""

    kind: Literal["webhook", "slack", "email"]
    url: str | None = None
    to: tuple[str, ...] = ()
    smtp_host: str = "localhost"
    smtp_port: Annotated[int, Strict(), Field(ge=1, le=65535)] = 25
    sender: str = "modelyard@localhost"

    @model_validator(mode="after")
    def _target(self) -> Self:
        if self.kind in ("webhook", "slack") and not self.url:
            raise_problems([(("url",), f"a {self.kind} channel needs a url")])
        if self.kind == "email" and not self.to:
            raise_problems([(("to",), "an email channel needs at least one address in 'to'")])
        return self


class Monitoring(_Model):
    """The prediction log, alert rules, and who hears about an alert."""

    log: PredictionLogSettings = Field(default_factory=PredictionLogSettings)
    alerts: tuple[AlertRule, ...] = Field(default_factory=tuple)
    cooldown: str = "1h"
    channels: dict[str, Channel] = Field(default_factory=dict)
    on_call: dict[Severity, tuple[str, ...]] = Field(default_factory=dict)

    @field_validator("cooldown")
    @classmethod
    def _cooldown(cls, value: str) -> str:
        parse_duration(value)
        return value

    @model_validator(mode="after")
    def _known_channels(self) -> Self:
        problems: list[tuple[tuple[str | int, ...], str]] = []
        for severity, names in self.on_call.items():
            for i, name in enumerate(names):
                if name not in self.channels:
                    known = ", ".join(sorted(self.channels)) or "none defined"
                    problems.append(
                        (("on_call", severity, i), f"unknown channel {name!r} ({known})")
                    )
        rules = [rule.name for rule in self.alerts]
        for i, rule in enumerate(rules):
            if rules.index(rule) != i:
                problems.append((("alerts", i, "name"), f"duplicate alert name {rule!r}"))
        if problems:
            raise_problems(problems)
        return self


class SearchSettings(_Model):
    """Hyper-parameter search for each family that has a search space."""

    method: Literal["grid", "random", "tpe"] = "tpe"
    trials: Annotated[int, Strict(), Field(ge=1, le=10_000)] = 20
    folds: Annotated[int, Strict(), Field(ge=2, le=20)] = 3
    engine: Literal["local", "ray"] = "local"


class Training(_Model):
    """How candidates are trained: imbalance handling, seed, families, search.

    ``imbalance`` applies to the training rows only (validation and test keep
    the real class distribution): ``class_weight`` weights rows by their
    class's balanced weight, ``oversample`` / ``undersample`` resample the
    training rows to ``target_ratio`` (smallest class / largest, default 1).
    ``families`` limits training to a subset (default: every family that
    applies to the task).
    """

    imbalance: Literal["none", "class_weight", "oversample", "undersample"] = "none"
    target_ratio: Annotated[float, Strict(), Field(gt=0, le=1)] | None = None
    seed: Annotated[int, Strict(), Field(ge=0)] = 42
    families: Annotated[tuple[str, ...], Field(min_length=1)] | None = None
    search: SearchSettings | None = None

    @field_validator("families")
    @classmethod
    def _known_families(cls, names: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for name in names or ():
            if name not in MODEL_FAMILIES:
                raise ValueError(
                    f"unknown model family {name!r}; known: {', '.join(MODEL_FAMILIES)}."
                    + did_you_mean(name, MODEL_FAMILIES)
                )
        if names is not None and len(set(names)) != len(names):
            raise ValueError(f"lists a family twice; list each once: {list(names)}")
        return names

    @model_validator(mode="after")
    def _ratio_needs_resampling(self) -> Self:
        if self.target_ratio is not None and self.imbalance not in ("oversample", "undersample"):
            msg = f"applies to imbalance oversample or undersample, not {self.imbalance!r}"
            raise_problems([(("target_ratio",), f"{msg}; remove it")])
        return self


_SLUG = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


def _slugify(text: str) -> str:
    return re.sub(r"[^a-z0-9_-]+", "-", text.lower()).strip("-_")[:64] or "project"


class Spec(_Model):
    """The validated contents of ``modelyard.yaml``."""

    name: str = Field(description="the project name: lowercase letters, digits, '-' and '_'")
    description: str | None = None
    decision: str | None = None
    task: Task = Field(description=f"one of {', '.join(TASKS)}")
    target: Column = Field(description="the column the model predicts")
    positive_class: ClassLabel | None = None
    columns: Columns = Field(default_factory=Columns)
    cleaning: tuple[dict[str, Any], ...] = Field(
        default_factory=tuple,
        description="cleaning steps fitted on training rows and replayed when serving, "
        "e.g. [{step: impute, columns: [income], strategy: median}]",
    )
    metrics: tuple[MetricGoal, ...] = Field(default_factory=tuple)
    costs: Costs = Field(default_factory=Costs)
    slices: tuple[Slice, ...] = Field(default_factory=tuple)
    slos: Slos = Field(default_factory=Slos)
    release: ReleasePolicy = Field(default_factory=ReleasePolicy)
    rollback: RollbackCriteria = Field(default_factory=RollbackCriteria)
    drift: DriftThresholds = Field(default_factory=DriftThresholds)
    retraining: Retraining = Field(default_factory=Retraining)
    governance: Governance = Field(default_factory=Governance)
    fairness: FairnessLimits = Field(default_factory=FairnessLimits)
    training: Training = Field(default_factory=Training)
    monitoring: Monitoring = Field(default_factory=Monitoring)

    @model_validator(mode="before")
    @classmethod
    def _default_metrics(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("metrics") is None and data.get("task") in TASKS:
            return {**data, "metrics": [dict(m) for m in DEFAULT_METRICS[data["task"]]]}
        return data

    @field_validator("name")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not _SLUG.fullmatch(value):
            raise ValueError(
                "must be 1-64 lowercase letters, digits, '-' or '_', starting with a letter "
                f"or digit; got {value!r}. Try {_slugify(value)!r}"
            )
        return value

    @model_validator(mode="after")
    def _cross_checks(self) -> Self:
        problems = self._target_problems() + self._metric_problems() + self._slice_problems()
        problems += self._release_problems() + self._trigger_problems()
        raise_problems(problems + self._training_problems())
        return self

    def _target_problems(self) -> list[Problem]:
        cols, target = self.columns, self.target
        problems: list[Problem] = [
            (("columns", role), f"{target!r} is the target; the target cannot be the {role} column")
            for role in ("id", "time", "group")
            if getattr(cols, role) == target
        ]
        for role in ("sensitive", "pii", "features", "exclude"):
            listed = getattr(cols, role) or ()
            if target in listed:
                msg = f"{target!r} is the target; remove it from columns.{role}"
                problems.append((("columns", role, listed.index(target)), msg))
        if target in self.drift.features:
            msg = f"{target!r} is the target, not a feature"
            problems.append((("drift", "features", target), msg))
        if self.positive_class is not None and self.task != "binary":
            msg = f"only applies to task 'binary' (task is {self.task!r}); remove it"
            problems.append((("positive_class",), msg))
        return problems

    def _task_problem(self, name: str) -> str | None:
        if self.task in METRICS[name].tasks:
            return None
        return (
            f"{name!r} does not apply to task {self.task!r}; "
            f"for {self.task} use one of: {', '.join(metrics_for(self.task))}"
        )

    def _metric_problems(self) -> list[Problem]:
        problems: list[Problem] = []
        seen: set[tuple[str, int | None]] = set()
        for i, goal in enumerate(self.metrics):
            if msg := self._task_problem(goal.name):
                problems.append((("metrics", i, "name"), msg))
            elif (goal.name, goal.k) in seen:
                problems.append((("metrics", i, "name"), f"{goal.label} is listed twice; keep one"))
            seen.add((goal.name, goal.k))
        return problems

    def _slice_problems(self) -> list[Problem]:
        problems: list[Problem] = []
        names: set[str] = set()
        for i, piece in enumerate(self.slices):
            if piece.name in names:
                unique = f"{piece.name!r} is used twice; slice names are unique"
                problems.append((("slices", i, "name"), unique))
            names.add(piece.name)
            if piece.goal is not None and (msg := self._task_problem(piece.goal.name)):
                problems.append((("slices", i, "goal", "name"), msg))
        return problems

    def _release_problems(self) -> list[Problem]:
        release = self.release
        if release.strategy == "ab" and release.sticky_key is None and self.columns.id is None:
            msg = "required for strategy 'ab' without columns.id: the field that keeps a caller"
            return [(("release", "sticky_key"), f"{msg} in one arm")]
        return []

    def _trigger_problems(self) -> list[Problem]:
        problems: list[Problem] = []
        for i, trigger in enumerate(self.retraining.triggers):
            if trigger.kind != "performance" or trigger.metric is None:
                continue
            where = ("retraining", "triggers", i)
            if msg := self._task_problem(trigger.metric):
                problems.append(((*where, "metric"), msg))
            elif self.trigger_goal(trigger) is None:
                msg = f"required: metrics has no threshold for {trigger.metric}; set one here"
                problems.append(((*where, "threshold"), f"{msg} or in metrics"))
        return problems

    def _training_problems(self) -> list[Problem]:
        training = self.training
        problems: list[Problem] = []
        if training.imbalance != "none" and self.task not in CLASSIFICATION_TASKS:
            msg = f"class imbalance only applies to classification (task is {self.task!r})"
            problems.append((("training", "imbalance"), f"{msg}; set it to 'none'"))
        for i, name in enumerate(training.families or ()):
            if self.task not in MODEL_FAMILIES[name]:
                fits = [n for n, tasks in MODEL_FAMILIES.items() if self.task in tasks]
                msg = f"{name!r} cannot learn task {self.task!r}; use one of {', '.join(fits)}"
                problems.append((("training", "families", i), msg))
        return problems

    # ----------------------------------------------------------------- API for later stages

    @property
    def content_hash(self) -> str:
        """The spec version: sha256 hex of the canonical JSON of the validated spec."""
        values = self.model_dump(mode="json")
        if self.training == Training():
            del values["training"]  # specs written before the section keep their version
        if self.fairness == FairnessLimits():
            del values["fairness"]
        if self.monitoring == Monitoring():
            del values["monitoring"]
        canonical = json.dumps(values, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def metric_goals(
        self, kind: Literal["model", "system"] | None = None
    ) -> tuple[MetricGoal, ...]:
        """Every goal the gates read: ``metrics``, then the SLOs ``metrics`` does not override."""
        named = {goal.name for goal in self.metrics}
        goals = [*self.metrics, *(g for g in self.slos.goals() if g.name not in named)]
        return tuple(g for g in goals if kind is None or g.kind == kind)

    def goal(self, name: str) -> MetricGoal | None:
        """The first goal named ``name`` (from ``metric_goals()``), or None."""
        return next((g for g in self.metric_goals() if g.name == name), None)

    def trigger_goal(self, trigger: Trigger) -> MetricGoal | None:
        """The goal a 'performance' trigger watches (its own threshold wins), or None."""
        if trigger.kind != "performance" or trigger.metric is None:
            return None
        base = self.goal(trigger.metric)
        threshold = trigger.threshold
        if threshold is None and base is not None:
            threshold = base.threshold
        if threshold is None:
            return None
        return MetricGoal(name=trigger.metric, threshold=threshold, k=base.k if base else None)

    def feature_columns(self, available: Sequence[str]) -> list[str]:
        """``columns.features`` if set, else every column of ``available`` except the target,
        id, time, group, PII, sensitive (evaluated, not learned from) and excluded ones."""
        cols = self.columns
        if cols.features is not None:
            return list(cols.features)
        skip = {self.target, cols.id, cols.time, cols.group, *cols.pii, *cols.sensitive}
        return [c for c in available if c not in skip and c not in cols.exclude]


def render_spec_template(name: str, task: str, target: str) -> str:
    """A commented ``modelyard.yaml``; see ``modelyard.spec_template``."""
    from modelyard.spec_template import render_spec_template as render

    return render(name, task, target)


def write_spec_template(
    folder: Path, name: str, task: str, target: str, overwrite: bool = False
) -> Path:
    """Write ``folder/modelyard.yaml`` from the template; see ``modelyard.spec_template``."""
    from modelyard.spec_template import write_spec_template as write

    return write(folder, name, task, target, overwrite=overwrite)


def spec_hash(spec: Spec) -> str:
    """The spec version recorded by runs and models; see ``Spec.content_hash``."""
    return spec.content_hash


# --------------------------------------------------------------------------- loading


def find_spec(start: Path | None = None, explicit: Path | str | None = None) -> Path:
    """The spec file to use: ``explicit`` if given, else ``modelyard.yaml`` in ``start``.

    ``start`` defaults to the current folder; an ``explicit`` folder means the
    ``modelyard.yaml`` inside it.
    """
    if explicit is not None:
        path = Path(explicit)
        if path.is_dir():
            path = path / SPEC_FILENAME
        if not path.is_file():
            raise SpecError(
                f"Spec file {str(path)!r} does not exist. Check the --spec path, "
                "or run `modelyard init` to create one."
            )
        return path
    folder = start if start is not None else Path.cwd()
    path = folder / SPEC_FILENAME
    if path.is_file():
        return path
    hint = ""
    if (folder / "modelyard.yml").is_file():
        hint = " Found modelyard.yml: rename it to modelyard.yaml."
    raise SpecError(
        f"No {SPEC_FILENAME} in {str(folder)!r}.{hint} Run `modelyard init` to create one, "
        "or pass --spec FILE."
    )


def load_spec(path: str | Path) -> Spec:
    """Read and validate a spec file; raises ``SpecError`` naming file, line and field."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(
            f"Spec file {str(path)!r} does not exist. Run `modelyard init` to create one."
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"Cannot read spec file {str(path)!r}: {exc}") from exc
    return parse_spec(text, source=str(path))


def parse_spec(text: str, source: str = "<string>") -> Spec:
    """Validate spec YAML text; ``source`` names the file in error messages."""
    root, data = read_yaml(text, source)
    try:
        return Spec.model_validate(data)
    except ValidationError as exc:
        raise spec_error(source, validation_issues(exc, root, source, Spec)) from exc
