"""Bring your own model: register a model trained elsewhere as a governed model version.

    imported = import_model(project, "churn", "model.txt", flavor="lightgbm",
                            signature="customers@2")
    imported.version.ref          # 'churn@1': served, monitored, evaluated, promoted as any
    imported.encoder.names        # the signature: the model's features, in its order
    imported.onnx_max_abs_diff    # the ONNX twin's largest difference, or None (see onnx_note)

Teams already have models — a LightGBM text model, an XGBoost JSON model, a
scikit-learn model saved with skops, an ONNX graph. Importing one takes five
steps; each refuses the model with a ``ModelyardError`` that says why and what
to do, and nothing is registered unless all pass.

1. **Load** the file with its flavor's safe loader (``train.flavors.load_model``):
   skops' allow-list, ONNX Runtime for a graph, LightGBM's and XGBoost's parsers.
2. **Ask the model about itself** (``ModelFacts``): its task (LightGBM or XGBoost
   objective, scikit-learn ``classes_`` and ``predict_proba``, an ONNX
   probabilities output), its number of features, their names when it kept
   them, which features are categories — with their vocabulary when the model
   stores it (LightGBM's ``pandas_categorical``, XGBoost's categories) — and the
   ranges its trees split on.
3. **Build the signature** (the ``FeatureEncoder``). From the model alone every
   feature is a number unless the model says category; unnamed features are
   ``f0 … f{n-1}``. From data (``signature=``: a CSV or Parquet file, or a
   registered data set ``NAME@V``), the data gives nullability and, for text
   columns, vocabularies: the model's names pick the columns; a model without
   names takes the data's feature columns (by the spec's roles, never the
   target) in order, and the counts must agree. A vocabulary stored in the
   model wins, since it defines the codes the model learnt; otherwise a text
   column's codes are its values in sorted order — the codes pandas
   categoricals and scikit-learn's ``OrdinalEncoder`` give by default.
4. **Score a sample**: up to ``SAMPLE_ROWS`` rows of the data, else
   ``SYNTHETIC_ROWS`` rows drawn per field (uniformly inside the range the
   model's trees split on when known, standard normal otherwise; categories
   uniformly over their codes). A model that cannot score them, or gives
   non-finite scores, probabilities outside [0, 1] or the wrong shape, is
   refused. Without data, a model that cannot score a row of missing values
   gets a signature whose fields may not be null, so serving rejects nulls
   with a 422 instead of failing.
5. **Make an ONNX twin** with ``train.onnx.export_onnx`` (LightGBM, XGBoost,
   scikit-learn), checked on those same rows; it is kept only if it predicts
   the same, and its largest difference is stored. An ONNX model is its own.

The bundle is saved with ``manifest["imported_from"]`` (file name, sha256,
flavor, where the signature came from), loaded back through the
sha256-verified path and checked to predict identically, and only then
registered (no run; metrics are the sizes). Evaluate the version
(``modelyard evaluate NAME@V --data DATA``) to measure its gates.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from modelyard.data.encoding import FeatureEncoder, FeatureField
from modelyard.errors import ArtifactError, DataError, InvalidInputError, NotFoundError
from modelyard.project import Project
from modelyard.registry.model_facts import ModelFacts, first_line, model_facts
from modelyard.registry.versions import ModelVersion, check_alias, register_model
from modelyard.train import flavors
from modelyard.train.bundle import ModelBundle, OnnxBlob, load_bundle
from modelyard.train.onnx import export_onnx

SAMPLE_ROWS = 5_000
"""Signature-data rows scored at import (and on which the ONNX twin is checked)."""
SYNTHETIC_ROWS = 1_000
"""Rows drawn per field when only the model is known."""
DATA_SUFFIXES = (".csv", ".tsv", ".txt", ".parquet", ".pq", ".gz", ".bz2", ".zst", ".xz")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")


@dataclass(frozen=True)
class ImportedModel:
    """The registered version and what the import found and checked."""

    version: ModelVersion
    task: str
    encoder: FeatureEncoder
    signature_source: str
    rows_checked: int
    onnx_max_abs_diff: float | None
    onnx_note: str


def import_model(
    project: Project,
    name: str,
    path: str | Path,
    *,
    flavor: str,
    signature: str | Path | None = None,
    task: str | None = None,
    target: str | None = None,
    threshold: float = 0.5,
    created_by: str = "local",
    aliases: tuple[str, ...] = (),
) -> ImportedModel:
    """Register the model file at ``path`` as the next version of ``name``.

    ``signature``: a CSV/Parquet file or a data set ``NAME@V`` whose rows
    describe the model's inputs (else the model alone does). ``task`` overrides
    what the model says (it must not contradict it); ``target`` (default: the
    spec's) is never taken as a feature; ``threshold`` is the binary decision
    threshold stored with the bundle.
    """
    _check_arguments(name, flavor, task, threshold, aliases)
    data = _read_model_file(Path(path), flavor)
    model = flavors.load_model(flavor, data)
    facts = model_facts(flavor, model, data)
    chosen_task = _resolve_task(facts, task, flavor)
    source, frame = _signature_frame(project, signature)
    bundle, sample, scores = _checked_bundle(
        project, flavor, data, facts, chosen_task, target or project.spec.target, frame, source
    )
    bundle.threshold = threshold
    encoder = bundle.encoder
    twin, note = _onnx_twin(flavor, model, encoder, chosen_task, sample)
    provenance = {
        "path": Path(path).name,
        "sha256": hashlib.sha256(data).hexdigest(),
        "flavor": flavor,
        "signature": source,
    }
    manifest = bundle.save(project.artifacts, data, twin, provenance=provenance)
    _check_round_trip(project, manifest.digest, sample, scores)
    metrics = {"model_bytes": float(len(data))}
    if twin is not None:
        metrics["onnx_bytes"] = float(len(twin.data))
    version = register_model(
        project,
        name,
        digest=manifest.digest,
        flavor=flavor,
        run_id=None,
        signature=encoder.to_dict(),
        metrics=metrics,
        gates=[],
        created_by=created_by,
        aliases=aliases,
    )
    return ImportedModel(
        version,
        chosen_task,
        encoder,
        source,
        len(sample),
        None if twin is None else twin.max_abs_diff,
        note,
    )


# ---------------------------------------------------------------------- arguments and file


def _check_arguments(
    name: str, flavor: str, task: str | None, threshold: float, aliases: tuple[str, ...]
) -> None:
    if not _NAME.fullmatch(name):
        raise InvalidInputError(
            f"Model name {name!r} is not valid: use letters, digits, '.', '_' or '-', "
            "starting with a letter or digit (e.g. 'churn-model')."
        )
    if flavor not in flavors.FLAVORS:
        raise InvalidInputError(
            f"Unknown model flavor {flavor!r}; import one of {', '.join(flavors.FLAVORS)}."
        )
    if task is not None and task not in flavors.TASKS:
        raise InvalidInputError(
            f"Task {task!r} cannot be imported; give one of {', '.join(flavors.TASKS)}."
        )
    if not 0.0 <= threshold <= 1.0:
        raise InvalidInputError(f"The decision threshold must be in [0, 1]; got {threshold}.")
    for alias in aliases:
        check_alias(alias)


def _read_model_file(path: Path, flavor: str) -> bytes:
    if not path.exists():
        raise NotFoundError(f"No model file at {path}. Check the path to the {flavor} model.")
    if not path.is_file():
        raise InvalidInputError(f"{path} is a folder; give the {flavor} model file itself.")
    data = path.read_bytes()
    if not data:
        raise ArtifactError(f"The model file {path} is empty.")
    return data


def _resolve_task(facts: ModelFacts, task: str | None, flavor: str) -> str:
    if task is None:
        if facts.task is None:
            raise InvalidInputError(
                f"Cannot tell what this {flavor} model predicts: {facts.task_note}. Import it "
                f"with --task {'|'.join(flavors.TASKS)} if its output fits one."
            )
        return facts.task
    if facts.task is not None and task != facts.task:
        raise InvalidInputError(
            f"This {flavor} model is a {facts.task} model, but the task given is {task}. "
            "Leave the task out to use the model's own."
        )
    return task


# ---------------------------------------------------------------------- the signature


def _signature_frame(
    project: Project, signature: str | Path | None
) -> tuple[str, pd.DataFrame | None]:
    """Where the signature comes from (for people) and its rows, if from data."""
    from modelyard.data.datasets import load_dataset, read_table

    if signature is None:
        return "the model", None
    path = Path(signature)
    if isinstance(signature, Path) or path.exists() or path.suffix.lower() in DATA_SUFFIXES:
        if not path.is_file():
            raise NotFoundError(
                f"No signature data file at {path}. Give a CSV or Parquet file, or a "
                "registered data set as NAME@V (see `modelyard data list`)."
            )
        return path.name, read_table(path)
    info, frame = load_dataset(project, str(signature))
    return info.ref, frame


def _feature_names(
    facts: ModelFacts, frame: pd.DataFrame | None, project: Project, target: str, source: str
) -> list[str]:
    """The model's feature names; an unnamed model's come from the data, or are ``f{i}``."""
    n_model = facts.n_features
    if facts.names is not None:
        names = list(facts.names)
        if frame is not None:
            missing = [c for c in names if c not in frame.columns]
            if missing:
                raise DataError(
                    f"The signature data {source} lacks {len(missing)} of the model's feature "
                    f"columns: {missing[:20]}. Pass data holding every column the model takes."
                )
        return names
    if frame is None:
        if n_model is None:
            raise InvalidInputError(
                "This model does not record how many features it takes; pass --signature "
                "DATA (a file or NAME@V) holding its feature columns in training order."
            )
        return [f"f{i}" for i in range(n_model)]
    names = _data_features(project, frame, target)
    if n_model is not None and len(names) != n_model:
        raise DataError(
            f"The model takes {n_model} features, but the signature data {source} has "
            f"{len(names)} feature columns ({names[:20]}). Pass data with exactly the model's "
            f"features in training order (plus, if you like, the target '{target}' and the "
            "spec's id/time columns, which are left out)."
        )
    return names


def _data_features(project: Project, frame: pd.DataFrame, target: str) -> list[str]:
    """The data's feature columns by the spec's roles, in the data's order, never ``target``."""
    from modelyard.data.schema import roles_from_spec

    columns = [str(c) for c in frame.columns]
    roles = roles_from_spec(project.spec, columns)
    return [c for c in columns if roles[c] == "feature" and c != target]


def _build_encoder(
    facts: ModelFacts, names: list[str], frame: pd.DataFrame | None, flavor: str
) -> FeatureEncoder:
    seen = FeatureEncoder.fit(frame, names).fields if frame is not None else [None] * len(names)
    encoder = FeatureEncoder(
        [_field(facts, i, name, seen[i], flavor) for i, name in enumerate(names)]
    )
    if frame is not None:
        _check_vocabularies(encoder, frame)
    return encoder


def _field(
    facts: ModelFacts, index: int, name: str, seen: FeatureField | None, flavor: str
) -> FeatureField:
    """The model's kind for a feature, with the data's nullability (and vocabulary)."""
    nullable = True if seen is None else seen.nullable
    vocabulary = facts.categorical.get(index)
    if vocabulary is not None:
        return FeatureField(name, "category", nullable, vocabulary)
    if seen is None or seen.kind == "number" or not seen.categories:
        return FeatureField(name, "number", nullable)
    boolean = seen.categories == ("False", "True")  # codes 0 and 1: the numbers themselves
    if facts.kinds_known and index not in facts.categorical and not boolean:
        raise DataError(
            f"Column '{name}' of the signature data holds text (e.g. {seen.categories[0]!r}), "
            f"but the {flavor} model takes feature '{name}' as a number. Pass data in which "
            f"'{name}' is numeric, as the model was trained on."
        )
    return seen


def _check_vocabularies(encoder: FeatureEncoder, frame: pd.DataFrame) -> None:
    """A category column none of whose values the model knows is a mismatch, not data."""
    for f in encoder.fields:
        if f.kind != "category":
            continue
        values = frame[f.name].dropna()
        if len(values) and not values.astype(str).isin(f.categories).any():
            raise DataError(
                f"None of the values of column '{f.name}' (e.g. {str(values.iloc[0])!r}) are "
                f"among the model's categories for it ({list(f.categories)[:10]}). Pass data "
                "spelled as the model was trained on."
            )


# ---------------------------------------------------------------------- scoring checks


def _checked_bundle(
    project: Project,
    flavor: str,
    data: bytes,
    facts: ModelFacts,
    task: str,
    target: str,
    frame: pd.DataFrame | None,
    source: str,
) -> tuple[ModelBundle, np.ndarray, np.ndarray]:
    """The bundle to save, the rows it was checked on, and its scores on them."""
    names = _feature_names(facts, frame, project, target, source)
    encoder = _build_encoder(facts, names, frame, flavor)
    sample = _sample_rows(encoder, facts, frame)
    bundle = ModelBundle.from_bytes(flavor, data, encoder, task, target)
    if frame is None:
        bundle.encoder = _nullability_from_model(bundle)
    scores = _checked_scores(bundle, sample, flavor, source)
    bundle.classes = _classes(facts, task, scores)
    return bundle, sample, scores


def _sample_rows(
    encoder: FeatureEncoder, facts: ModelFacts, frame: pd.DataFrame | None
) -> np.ndarray:
    """Up to ``SAMPLE_ROWS`` encoded data rows (a seeded sample), or synthetic rows."""
    if frame is not None:
        if len(frame) == 0:
            raise DataError("The signature data has no rows; the model cannot be checked on it.")
        if len(frame) > SAMPLE_ROWS:
            rows = np.random.default_rng(0).choice(len(frame), SAMPLE_ROWS, replace=False)
            frame = frame.iloc[np.sort(rows)]
        return encoder.transform(frame)
    rng = np.random.default_rng(0)
    out = np.empty((SYNTHETIC_ROWS, len(encoder.fields)), dtype=np.float64)
    for j, f in enumerate(encoder.fields):
        if f.kind == "category":
            out[:, j] = rng.integers(0, max(1, len(f.categories)), SYNTHETIC_ROWS)
        elif j in facts.ranges:
            out[:, j] = rng.uniform(*facts.ranges[j], SYNTHETIC_ROWS)
        else:
            out[:, j] = rng.standard_normal(SYNTHETIC_ROWS)
    return out


def _nullability_from_model(bundle: ModelBundle) -> FeatureEncoder:
    """Fields may be null only if the model scores a row of missing values."""
    empty = np.full((1, len(bundle.encoder.fields)), np.nan)
    try:
        scores = bundle.predict(empty)
        if np.all(np.isfinite(scores)):
            return bundle.encoder
    except Exception:  # the model refuses missing values: serving must refuse nulls
        pass
    return FeatureEncoder(
        [FeatureField(f.name, f.kind, False, f.categories) for f in bundle.encoder.fields]
    )


def _checked_scores(bundle: ModelBundle, X: np.ndarray, flavor: str, source: str) -> np.ndarray:
    where = f"{len(X)} rows of {source}" if source != "the model" else f"{len(X)} synthetic rows"
    try:
        scores = np.asarray(bundle.predict(X), dtype=np.float64)
    except Exception as exc:
        raise ArtifactError(
            f"The {flavor} model cannot score {where} ({type(exc).__name__}: "
            f"{first_line(exc)}). Check "
            "that the signature matches the data the model was trained on."
        ) from exc
    _check_output(scores, bundle.task, len(X), f"The {flavor} model's scores on {where}")
    return scores


def _check_output(scores: np.ndarray, task: str, n_rows: int, what: str) -> None:
    wide = task == "multiclass"
    shape_ok = scores.ndim == 2 and scores.shape[1] >= 2 if wide else scores.ndim == 1
    if not shape_ok or len(scores) != n_rows:
        expected = f"({n_rows}, classes)" if wide else f"({n_rows},)"
        raise ArtifactError(
            f"{what} have shape {scores.shape}; a {task} model gives {expected}. Import it "
            "with the task its output fits (--task)."
        )
    bad = ~np.isfinite(scores)
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        raise ArtifactError(
            f"{what} include {int(bad.sum())} non-finite values (first at row {row}). A "
            "served model must score every row: check the model, or the signature data."
        )
    if task != "regression" and (scores.min() < 0.0 or scores.max() > 1.0):
        raise ArtifactError(
            f"{what} range over [{scores.min():.4g}, {scores.max():.4g}], so they are not "
            "probabilities. Save the model with a probability output (e.g. LightGBM objective "
            "binary, XGBoost binary:logistic), or import it with --task regression."
        )


def _classes(facts: ModelFacts, task: str, scores: np.ndarray) -> tuple[str, ...] | None:
    if task != "multiclass":
        return None
    k = scores.shape[1]
    if facts.classes is not None and len(facts.classes) != k:
        raise ArtifactError(
            f"The model names {len(facts.classes)} classes but scores {k} per row; it is "
            "inconsistent and cannot be served."
        )
    return facts.classes or tuple(str(i) for i in range(k))


def _onnx_twin(
    flavor: str, model: Any, encoder: FeatureEncoder, task: str, X: np.ndarray
) -> tuple[OnnxBlob | None, str]:
    """The verified ONNX twin and a note, or None and why there is none."""
    if flavor == "onnx":
        return None, "the model is an ONNX graph already"
    reasons: list[str] = []
    try:
        export = export_onnx(flavor, model, encoder, task, X, on_skip=reasons.append)
    except Exception as exc:  # a converter or runtime failure is never the import's failure
        return None, f"the ONNX export failed ({type(exc).__name__}: {first_line(exc)})"
    if export is None:
        return None, reasons[0] if reasons else "no ONNX export"
    note = f"kept: max abs diff {export.max_abs_diff:.2g} over {export.rows_checked:,} rows"
    return OnnxBlob(export.data, float(export.max_abs_diff)), note


def _check_round_trip(project: Project, digest: str, X: np.ndarray, expected: np.ndarray) -> None:
    """The saved bundle, loaded the way serving loads it, must score as checked."""
    got = load_bundle(project.artifacts, digest).predict(X)
    if not np.array_equal(np.asarray(got, dtype=np.float64), expected, equal_nan=True):
        raise ArtifactError(
            f"The saved bundle {digest[:12]} scores differently from the model file; it was "
            "not registered. Report this with the model file."
        )
