"""The drift baseline of a model version: its training data, scored by the version itself.

    digest = store_training_baseline(project, bundle, run_id)  # at registration
    baseline = training_baseline(project, "loans", 3)          # when drift is measured

The baseline holds the model's inputs (PII columns left out: the log keeps
them hashed, or not at all) and the score as the prediction log keeps it,
fitted with ``monitor.baseline.fit_baseline`` on the training data set of the
version's run (its input with role "train"). ``registry.versions.register_candidate``
stores it as an artifact blob and records the blob's sha256 on the version
(``baseline_digest``), so measuring drift never reads the training data again.

A version registered without one (before the column existed) is fitted on
first use and its digest recorded then. An imported model has no training
data set, hence no baseline: asking for one is a ``DataError``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from modelyard.errors import DataError
from modelyard.monitor.baseline import Baseline, fit_baseline
from modelyard.project import Project

if TYPE_CHECKING:
    import pandas as pd

    from modelyard.train.bundle import ModelBundle

__all__ = ["SCORE", "store_training_baseline", "training_baseline"]

SCORE = "score"
"""The baseline's column for the model's score, named as in the prediction log."""


def training_baseline(project: Project, model_name: str, version: int) -> Baseline:
    """The drift baseline of ``model_name@version``: stored, or fitted now and recorded."""
    from modelyard.registry.versions import record_baseline, resolve
    from modelyard.train.bundle import load_bundle

    ref = f"{model_name}@{version}"
    found = resolve(project, ref)
    if found.baseline_digest and project.artifacts.exists(found.baseline_digest):
        return _read(project, found.baseline_digest)
    bundle = load_bundle(project.artifacts, found.digest)
    digest = store_training_baseline(project, bundle, found.run_id)
    if digest is None:
        raise DataError(
            f"Model {ref} has no training data set in its lineage (an imported model?), so "
            "there is no baseline to measure drift against. Remove the drift rules for it, "
            "or register a version trained here."
        )
    record_baseline(project, ref, digest)
    return _read(project, digest)


def store_training_baseline(
    project: Project, bundle: ModelBundle, run_id: str | None
) -> str | None:
    """Fit the baseline of ``bundle``, trained by run ``run_id``, and store it as a blob.

    Returns the blob's digest, or None when the run read no training data set.
    """
    frame = _training_frame(project, run_id)
    return (
        None if frame is None else _store(project, _fit_training_baseline(project, bundle, frame))
    )


def _training_frame(project: Project, run_id: str | None) -> pd.DataFrame | None:
    """The rows of the data set run ``run_id`` trained on; None without a run or one."""
    from modelyard.data.datasets import load_dataset
    from modelyard.train.runs import get_run

    if run_id is None:
        return None
    train = [i.ref for i in get_run(project, run_id).inputs if i.role == "train"]
    return load_dataset(project, train[0])[1] if train else None


def _fit_training_baseline(project: Project, bundle: ModelBundle, frame: pd.DataFrame) -> Baseline:
    pii = set(project.spec.columns.pii or ())
    kinds = {f.name: f.kind for f in bundle.encoder.fields}
    columns = [c for c in bundle.input_names if c in frame.columns and c not in pii]
    scores = _logged_scores(bundle.score_frame(frame), bundle.task)
    table = pa.Table.from_pandas(frame[columns], preserve_index=False).append_column(
        SCORE, pa.array(scores, pa.float64())
    )
    categories = [c for c in columns if kinds.get(c) != "number"]
    return fit_baseline(table, [*columns, SCORE], categorical=categories)


def _logged_scores(scores: np.ndarray, task: str) -> np.ndarray:
    """Scores as the prediction log keeps them: multiclass → the top class's probability."""
    found: np.ndarray = scores.max(axis=1) if task == "multiclass" else scores
    return found.astype(np.float64)


def _store(project: Project, baseline: Baseline) -> str:
    return project.artifacts.put_bytes(json.dumps(baseline.to_dict()).encode()).digest


def _read(project: Project, digest: str) -> Baseline:
    return Baseline.from_dict(json.loads(project.artifacts.get_bytes(digest)))
