"""The embedded demo data set: personal-loan applications and whether they defaulted.

It is generated, not downloaded, so the demo and the tests run offline and are
reproducible from a seed. The generator is meant to look like the real thing:
numeric and categorical features with missing values and a category typed
several ways ("RENT", "rent", " Rent "), a sensitive attribute
(``gender``) that does not enter the true risk, a PII column (``email``), an id,
an application timestamp, and a later period (``period == "recent"``) whose
applicants are poorer and borrow more — data drift — and whose default rate
therefore rises.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

DEMO_SPEC = """\
# The demo project: decide whether to approve a personal loan.
name: loans
decision: Approve or decline a personal-loan application.
task: binary
target: default
positive_class: 1
columns:
  id: loan_id
  time: applied_at
  sensitive: [gender]
  pii: [email]
  exclude: [period]
cleaning:                # fitted on training rows only, replayed identically when serving
  - step: normalise_categories
    columns: [home_ownership, purpose, region]
    rare_min_share: 0.005
  - step: clip_outliers
    columns: [income, loan_amount, debt_to_income]
    method: quantile
    quantiles: [0.001, 0.999]
metrics:
  - name: roc_auc
    threshold: 0.70
  - name: recall
    threshold: 0.50
  - name: ece
    threshold: 0.05
costs:
  false_positive: 1.0    # a declined good customer: lost margin
  false_negative: 8.0    # an approved default: lost principal
  currency: EUR
slos:
  p99_latency_ms: 50
  error_rate: 0.01
governance:
  approvals_required: 1
"""

PURPOSES = [
    "debt_consolidation",
    "credit_card",
    "home_improvement",
    "car",
    "medical",
    "small_business",
    "other",
]
HOME_OWNERSHIP = ["RENT", "MORTGAGE", "OWN", "OTHER"]
REGIONS = ["north", "south", "east", "west", "central"]
#: The demo's numeric features, in column order (the others are categories, ids or labels).
NUMERIC_FEATURES = (
    "age",
    "income",
    "loan_amount",
    "term_months",
    "interest_rate",
    "credit_score",
    "debt_to_income",
    "employment_years",
    "open_accounts",
    "delinquencies_2y",
)


def make_loans(rows: int = 50_000, *, recent_share: float = 0.2, seed: int = 7) -> pd.DataFrame:
    """Generate ``rows`` loan applications; the last ``recent_share`` of them drift."""
    if rows < 100:
        raise ValueError(f"make_loans needs at least 100 rows to be realistic; got {rows}.")
    rng = np.random.default_rng(seed)
    n_recent = int(rows * recent_share)
    recent = np.zeros(rows, dtype=bool)
    recent[rows - n_recent :] = True
    frame = pd.DataFrame(_applicants(rng, recent))
    frame["default"] = _defaults(rng, frame)
    _blank_out(rng, frame)
    _misspell(rng, frame)
    frame.insert(0, "loan_id", [f"L{i:07d}" for i in range(rows)])
    frame.insert(1, "applied_at", _timestamps(rng, recent))
    frame["email"] = [f"applicant{i}@example.com" for i in rng.permutation(rows)]
    frame["period"] = np.where(recent, "recent", "reference")
    return frame


def _applicants(rng: np.random.Generator, recent: np.ndarray) -> dict[str, Any]:
    n = recent.size
    income = rng.lognormal(mean=np.where(recent, 10.55, 10.8), sigma=0.5)
    amount = np.clip(rng.lognormal(np.where(recent, 9.6, 9.4), 0.6), 1_000, 60_000)
    purpose_p = np.array([0.38, 0.2, 0.12, 0.1, 0.06, 0.06, 0.08])
    recent_p = np.array([0.32, 0.18, 0.1, 0.1, 0.08, 0.14, 0.08])
    purpose = np.where(
        recent, rng.choice(PURPOSES, n, p=recent_p), rng.choice(PURPOSES, n, p=purpose_p)
    )
    return {
        "age": np.clip(rng.normal(41, 12, n), 18, 80).round().astype(int),
        "income": income.round(-2),
        "loan_amount": amount.round(-1),
        "term_months": rng.choice([36, 60], n, p=[0.7, 0.3]),
        "interest_rate": np.clip(rng.normal(np.where(recent, 13.5, 11.5), 4, n), 3, 30).round(2),
        "credit_score": np.clip(rng.normal(690, 60, n), 300, 850).round(),
        "debt_to_income": np.clip(rng.gamma(2.2, 8, n), 0, 80).round(1),
        "employment_years": np.clip(rng.exponential(6, n), 0, 40).round(1),
        "open_accounts": rng.poisson(8, n),
        "delinquencies_2y": rng.poisson(np.where(recent, 0.45, 0.3)),
        "home_ownership": rng.choice(HOME_OWNERSHIP, n, p=[0.4, 0.4, 0.17, 0.03]),
        "purpose": purpose,
        "region": rng.choice(REGIONS, n),
        "gender": rng.choice(["female", "male", "other"], n, p=[0.48, 0.5, 0.02]),
    }


def _defaults(rng: np.random.Generator, f: pd.DataFrame) -> np.ndarray:
    """The true risk: thresholds and interactions a linear model cannot draw; ignores gender."""
    payment_burden = f["loan_amount"] / f["income"] * (36 / f["term_months"])
    score = f["credit_score"]
    logit = (
        -2.6
        + 1.6 * (score < 620)
        + 0.7 * ((score >= 620) & (score < 680))
        - 0.5 * (score > 760)
        + 1.4 * (payment_burden > 0.45)
        + 0.6 * (payment_burden > 0.9)
        + 0.06 * np.maximum(f["interest_rate"] - 14, 0) ** 1.5
        + 0.9 * (f["debt_to_income"] > 35)
        + 0.5 * np.minimum(f["delinquencies_2y"], 3)
        - 0.6 * ((f["employment_years"] > 2) & (f["employment_years"] < 15))
        + 0.9 * ((f["purpose"] == "small_business") & (payment_burden > 0.3))
        + 0.3 * (f["purpose"] == "medical")
        - 0.4 * ((f["home_ownership"] == "OWN") & (score > 650))
        + 0.8 * ((f["age"] < 25) & (score < 650))
    )
    risk: np.ndarray = 1 / (1 + np.exp(-logit.to_numpy(np.float64)))
    return (rng.random(len(f)) < risk).astype(np.int64)


def _misspell(rng: np.random.Generator, f: pd.DataFrame) -> None:
    """Some branches type categories by hand: 'rent', ' Rent ' for 'RENT' (3 % of rows)."""
    messy = rng.random(len(f)) < 0.03
    variants = np.array([str.lower, lambda v: f" {v.title()} "], dtype=object)
    picks = rng.integers(0, 2, len(f))
    f.loc[messy, "home_ownership"] = [
        variants[k](v) for k, v in zip(picks[messy], f.loc[messy, "home_ownership"], strict=True)
    ]


def _blank_out(rng: np.random.Generator, f: pd.DataFrame) -> None:
    """Missing values as real application forms have them (after the label is drawn)."""
    for column, share in {"income": 0.03, "credit_score": 0.02, "employment_years": 0.06}.items():
        f.loc[rng.random(len(f)) < share, column] = np.nan


def _timestamps(rng: np.random.Generator, recent: np.ndarray) -> pd.Series:
    start = pd.Timestamp("2024-01-01", tz="UTC")
    cutoff = pd.Timestamp("2025-04-01", tz="UTC")
    end = pd.Timestamp("2025-07-01", tz="UTC")
    n_old, n_new = int((~recent).sum()), int(recent.sum())
    old = start + (cutoff - start) * np.sort(rng.random(n_old))
    new = cutoff + (end - cutoff) * np.sort(rng.random(n_new))
    return pd.Series(np.concatenate([old, new])).dt.floor("s")
