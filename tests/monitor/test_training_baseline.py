"""The drift baseline is fitted at registration, kept with the version, and read back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from typer.testing import CliRunner

import modelyard.data.datasets
from modelyard.cli import app
from modelyard.data.datasets import add_dataset, get_version
from modelyard.data.demo import make_loans
from modelyard.errors import DataError
from modelyard.monitor.baseline import fit_baseline
from modelyard.monitor.training_baseline import training_baseline
from modelyard.project import Project
from modelyard.registry.versions import ModelVersion, register_candidate, register_model, resolve
from modelyard.store import tables
from modelyard.train.bundle import ModelBundle
from modelyard.train.trainer import train_candidates


@dataclass
class Registered:
    project: Project
    version: ModelVersion
    bundle: ModelBundle
    frame: pd.DataFrame


@pytest.fixture
def registered(project: Project) -> Iterator[Registered]:
    """``loans@1``: a logistic regression registered from its run on demo data."""
    frame = make_loans(1_500, seed=5)
    dataset = add_dataset(project, "loans", frame)
    (result,) = train_candidates(project, dataset, frame, families=["logistic"])
    assert result.bundle is not None
    yield Registered(project, register_candidate(project, "loans", result), result.bundle, frame)


def _stored(project: Project, digest: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(project.artifacts.get_bytes(digest))
    return found


def _deciles(values: np.ndarray) -> np.ndarray:
    return np.unique(np.quantile(values[np.isfinite(values)], np.linspace(0, 1, 11)[1:-1]))


def _count_load_dataset(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every training data set read from now on."""
    reads: list[str] = []
    original = modelyard.data.datasets.load_dataset

    def counted(project: Project, ref: str, *args: Any, **kwargs: Any) -> Any:
        reads.append(ref)
        return original(project, ref, *args, **kwargs)

    monkeypatch.setattr(modelyard.data.datasets, "load_dataset", counted)
    return reads


def _forget_baseline(project: Project, version_id: str) -> None:
    """Make the row look like one registered before baselines were stored."""
    with project.db.write() as session:
        session.get_one(tables.ModelVersion, version_id).baseline_digest = None


def test_registration_stores_the_baseline_of_the_training_data(registered: Registered) -> None:
    project, bundle, frame = registered.project, registered.bundle, registered.frame
    digest = registered.version.baseline_digest
    assert digest is not None and resolve(project, "loans@1").baseline_digest == digest
    stored = _stored(project, digest)

    # fitted here from the rows in memory: the inputs (no PII column), plus the score
    kinds = {f.name: f.kind for f in bundle.encoder.fields}
    features = [c for c in bundle.input_names if c not in project.spec.columns.pii]
    scores = bundle.score_frame(frame)
    table = pa.Table.from_pandas(frame[features], preserve_index=False)
    table = table.append_column("score", pa.array(scores, pa.float64()))
    direct = fit_baseline(
        table, [*features, "score"], categorical=[c for c in features if kinds[c] != "number"]
    )
    assert stored == direct.to_dict()

    columns = {c["name"]: c for c in stored["columns"]}
    assert list(columns) == [*features, "score"]
    assert stored["rows"] == len(frame)
    income = frame["income"].to_numpy(float)
    assert columns["income"]["bins"]["edges"] == pytest.approx(_deciles(income).tolist())
    assert columns["score"]["bins"]["edges"] == pytest.approx(_deciles(scores).tolist())
    purpose = frame["purpose"].value_counts()
    bins = columns["purpose"]["bins"]["categories"]
    assert columns["purpose"]["counts"] == [*(int(purpose[c]) for c in bins), 0]  # 0: unseen


def test_a_registered_version_never_reads_its_training_data_again(
    registered: Registered, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = registered.project
    reads = _count_load_dataset(monkeypatch)
    dataset_blob = get_version(project, "loans@1").blob
    assert project.artifacts.delete(dataset_blob)

    baseline = training_baseline(project, "loans", 1)

    assert reads == []
    assert registered.version.baseline_digest is not None
    assert baseline.to_dict() == _stored(project, registered.version.baseline_digest)


def test_a_version_without_a_stored_baseline_is_fitted_once_then_recorded(
    registered: Registered, monkeypatch: pytest.MonkeyPatch
) -> None:
    project, at_registration = registered.project, registered.version.baseline_digest
    _forget_baseline(project, registered.version.id)
    reads = _count_load_dataset(monkeypatch)

    first = training_baseline(project, "loans", 1)
    recorded = resolve(project, "loans@1").baseline_digest
    again = training_baseline(project, "loans", 1)

    assert reads == ["loans@1"]  # fitted from the training data once, read back after
    assert recorded == at_registration  # the same fit as at registration, the same blob
    assert first.to_dict() == again.to_dict() == _stored(project, recorded)


def test_a_version_without_training_data_has_no_baseline(registered: Registered) -> None:
    project = registered.project
    imported = register_model(
        project,
        "imported",
        digest=registered.version.digest,
        flavor="sklearn",
        run_id=None,
        signature={},
        metrics={},
        gates=[],
    )
    assert imported.baseline_digest is None
    with pytest.raises(DataError, match=r"imported@1 has no training data set.*trained here"):
        training_baseline(project, "imported", 1)
    assert resolve(project, "imported@1").baseline_digest is None


def test_models_show_says_whether_a_baseline_is_stored(registered: Registered) -> None:
    project = registered.project
    digest = registered.version.baseline_digest
    assert digest is not None
    spec = ["--spec", str(project.spec_path), "models", "show"]
    shown = CliRunner().invoke(app, [*spec, "loans@1"])
    assert shown.exit_code == 0, shown.output
    assert f"Drift baseline: sha256 {digest[:12]}" in shown.output

    _forget_baseline(project, registered.version.id)
    shown = CliRunner().invoke(app, [*spec, "loans@1"])
    assert "Drift baseline: none stored" in shown.output
