"""Reproduce a recorded run from its record alone, and say whether the metrics are identical.

Everything comes from what the run stored, never from the project as it is now:

    spec          the spec version the run recorded (``runs.spec_hash`` → spec_versions)
    data          its input dataset version (run_inputs, role "train")
    split         its "split" artifact (``Split.from_dict``: the exact row ids)
    family        run params "family", "task"; exact params from its "params.json" artifact
    seed          the run's seed; imbalance policy from params "imbalance*"
    cleaning      re-fitted on the training rows from that spec version's steps

The model is re-fitted and re-evaluated on the same test rows; every recorded
metric is compared for exact equality, except timings (``leaderboard.TIMINGS``)
and the ONNX size (no ONNX twin is rebuilt). Differences are all reported,
never hidden. The reproduction is itself recorded as a run of kind
"reproduce" with tag ``reproduces=<run id>``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

from sqlalchemy import select

from modelyard.data.datasets import load_dataset
from modelyard.data.imbalance import ImbalancePolicy
from modelyard.data.splits import Split
from modelyard.errors import NotFoundError, TrainingError
from modelyard.project import Project
from modelyard.spec import Spec
from modelyard.store import Blob, tables
from modelyard.train.environment import code_version, library_versions
from modelyard.train.families import get_family
from modelyard.train.leaderboard import TIMINGS
from modelyard.train.runs import Run, RunRecord, get_run
from modelyard.train.trainer import fit_candidate, measured, prepare

#: Recorded metrics not compared: timings vary run to run; ONNX is not rebuilt.
NOT_COMPARED = (*TIMINGS, "onnx_bytes")


@dataclass(frozen=True)
class MetricComparison:
    """One metric as recorded and as reproduced."""

    name: str
    recorded: float | None
    reproduced: float | None

    @property
    def identical(self) -> bool:
        a, b = self.recorded, self.reproduced
        if a is None or b is None:
            return False
        return a == b or (math.isnan(a) and math.isnan(b))

    @property
    def difference(self) -> float | None:
        if self.recorded is None or self.reproduced is None:
            return None
        return self.reproduced - self.recorded


@dataclass
class Reproduction:
    """The outcome of ``reproduce_run``."""

    run_id: str
    name: str
    new_run_id: str
    comparisons: list[MetricComparison]
    notes: list[str] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return bool(self.comparisons) and all(c.identical for c in self.comparisons)

    @property
    def differences(self) -> list[MetricComparison]:
        return [c for c in self.comparisons if not c.identical]


def reproduce_run(project: Project, run_id: str) -> Reproduction:
    """Rebuild run ``run_id`` (an id prefix is enough) from its record and compare its metrics."""
    record = get_run(project, run_id)
    _check_reproducible(record)
    spec = _spec_version(project, record)
    artifacts = {a.name: a for a in record.artifacts}
    dataset = next(i for i in record.inputs if i.role == "train")
    _, frame = load_dataset(project, dataset.dataset_version_id)
    split = Split.from_dict(json.loads(project.artifacts.get_bytes(artifacts["split"].digest)))
    params = json.loads(project.artifacts.get_bytes(artifacts["params.json"].digest))
    family = get_family(record.params["family"])
    seed = int(record.seed if record.seed is not None else record.params["seed"])
    prepared = prepare(spec, frame, split, _policy(record, seed))
    fitted = fit_candidate(spec, family, params, prepared)
    reproduced = measured(fitted)
    names = sorted((set(record.metrics) | set(reproduced)) - set(NOT_COMPARED))
    comparisons = [MetricComparison(n, record.metrics.get(n), reproduced.get(n)) for n in names]
    result = Reproduction(record.id, record.name, "", comparisons, _notes(project, record))
    with Run(project, name=record.name, kind="reproduce", seed=seed) as run:
        run.split = split.describe()
        run.log_params(record.params)
        run.set_tags(_tags(record, result))
        for name in ("split", "params.json"):
            run.log_artifact(name, Blob(artifacts[name].digest, artifacts[name].size))
        run.add_input(dataset.dataset_version_id, "train")
        run.log_metrics({**reproduced, "fit_seconds": fitted.fit_seconds})
        run.log_artifact("model", fitted.bundle.save(project.artifacts, fitted.model_bytes))
    result.new_run_id = run.id
    return result


def _check_reproducible(record: RunRecord) -> None:
    where = f"Run {record.id} ('{record.name}')"
    if record.status != "finished":
        error = record.tags.get("error", "no error recorded").strip()
        raise TrainingError(
            f"{where} {record.status} ({error}); it has no metrics to reproduce. "
            "Fix the cause and train again."
        )
    stored = {a.name for a in record.artifacts}
    missing = [
        what
        for what, present in (
            ("the 'split' artifact", "split" in stored),
            ("the 'params.json' artifact", "params.json" in stored),
            ("a 'family' parameter", "family" in record.params),
            ("a training dataset input", any(i.role == "train" for i in record.inputs)),
            ("a spec version", record.spec_hash is not None),
        )
        if not present
    ]
    if missing:
        raise TrainingError(
            f"{where} cannot be rebuilt: its record lacks {', '.join(missing)}. Runs from "
            "`modelyard train` record all of them; train again to get a reproducible run."
        )


def _spec_version(project: Project, record: RunRecord) -> Spec:
    with project.db.read() as session:
        content = session.scalar(
            select(tables.SpecVersion.content).where(
                tables.SpecVersion.project_id == project.id,
                tables.SpecVersion.hash == record.spec_hash,
            )
        )
    if content is None:
        raise NotFoundError(
            f"Spec version {str(record.spec_hash)[:12]} of run {record.id} is not in the store; "
            "the run cannot be rebuilt."
        )
    return Spec.model_validate(content)


def _policy(record: RunRecord, seed: int) -> ImbalancePolicy:
    ratio = record.params.get("imbalance_target_ratio", "None")
    return ImbalancePolicy(
        record.params.get("imbalance", "none"),  # type: ignore[arg-type]
        None if ratio == "None" else float(ratio),
        seed,
    )


def _notes(project: Project, record: RunRecord) -> list[str]:
    """What differs between then and now besides the record: library and code versions."""
    notes = []
    then = record.environment.get("packages", {})
    now = library_versions()
    changed = [f"{k} {v} → {now[k]}" for k, v in sorted(then.items()) if k in now and now[k] != v]
    if changed:
        notes.append("library versions changed: " + ", ".join(changed))
    current = code_version(project.root)
    if record.code_version.get("git") != current.get("git"):
        notes.append(
            f"code version changed: git {record.code_version.get('git')} → {current.get('git')}"
        )
    return notes


def _tags(record: RunRecord, result: Reproduction) -> dict[str, str]:
    differences = {c.name: [c.recorded, c.reproduced] for c in result.differences}
    return {
        "reproduces": record.id,
        "spec_hash": str(record.spec_hash),
        "identical": str(result.identical).lower(),
        "differences": json.dumps(differences)[:4000],
    }
