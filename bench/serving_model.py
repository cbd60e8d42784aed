"""The model every server in ``bench/serving.py`` scores, its project, and the in-process limit.

One binary LightGBM booster (200 trees, 31 leaves, 30 float features) trained
on generated data; the single request row; projects holding it as
``bench@champion``, registered through the CLI (``modelyard init`` and
``modelyard models import``), with the prediction log on (the spec's default)
or off; and the µs per row of each way to score it in process, the floor under
any server.
"""

from __future__ import annotations

import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "bench"
MODEL = "bench"
N_FEATURES = 30
# Variables that would point a child process at another project, store, server or log folder.
FOREIGN_ENV = (
    "MODELYARD_DB_URL",
    "MODELYARD_ARTIFACTS",
    "MODELYARD_URL",
    "MODELYARD_TOKEN",
    "MODELYARD_PREDICTIONS",
)
LOGGING_OFF = "\nmonitoring:\n  log:\n    enabled: false\n"


@dataclass
class Model:
    """The booster under test, its text file, and the one request row."""

    booster: Any
    path: Path
    X: np.ndarray
    row: list[float]
    expected: float


def build_model(work: Path, seed: int = 7) -> Model:
    """A binary LightGBM booster (200 trees, 31 leaves) on generated data."""
    import lightgbm as lgb

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(20_000, N_FEATURES))
    logit = X[:, :10] @ rng.normal(size=10) + np.sin(X[:, 10] * 2) + X[:, 11] * X[:, 12]
    y = (logit + rng.logistic(size=len(X)) > 0).astype(int)
    names = [f"f{i:02d}" for i in range(N_FEATURES)]
    # One thread: OpenMP teams on a busy 2-core machine spin, and training took 40 s, not 3.
    params = dict(objective="binary", num_leaves=31, num_threads=1, verbose=-1, seed=seed)
    booster = lgb.train(params, lgb.Dataset(X, y, feature_name=names), num_boost_round=200)
    path = work / "model.txt"
    booster.save_model(str(path))
    # Multiples of 1/64: exact in FP32 and in short decimals, so every server sees one row.
    row = [round(float(v) * 64) / 64 for v in X[0]]
    expected = float(booster.predict(np.array([row]), num_threads=1)[0])
    return Model(booster, path, X, row, expected)


def request_body(row: list[float]) -> bytes:
    tensor = {"name": "input-0", "shape": [1, len(row)], "datatype": "FP32", "data": [row]}
    return json.dumps({"inputs": [tensor]}, separators=(",", ":")).encode()


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in FOREIGN_ENV}
    return {**env, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def modelyard_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modelyard", *args],
        cwd=cwd,
        env=child_env(),
        capture_output=True,
        text=True,
        check=False,
    )


def register(project: Path, model: Model, *, logging: bool = True) -> None:
    """A project holding the booster as ``bench@champion``, registered through the CLI.

    ``logging=False`` appends ``monitoring: {log: {enabled: false}}`` to the
    spec ``modelyard init`` wrote; otherwise the spec keeps its defaults (every
    answered row logged).
    """
    project.mkdir()
    done = modelyard_cli(*f"init . --name {MODEL} --target y".split(), cwd=project)
    if done.returncode == 0 and not logging:
        with (project / "modelyard.yaml").open("a") as spec:
            spec.write(LOGGING_OFF)
        done = modelyard_cli("spec", "check", cwd=project)
    if done.returncode == 0:
        imported = f"models import {MODEL} {model.path} --flavor lightgbm --alias champion"
        done = modelyard_cli(*imported.split(), cwd=project)
    if done.returncode != 0:
        raise SystemExit(f"modelyard {' '.join(done.args[3:])} failed:\n{done.stdout}{done.stderr}")


# ---------------------------------------------------------------------- in-process limit


def in_process_limit(model: Model, spec: Path, body: bytes) -> dict[str, dict[str, float]]:
    """µs per row (median over many calls) of each way to score, at batch 1 and 1,024."""
    from modelyard.data.encoding import FeatureEncoder, FeatureField
    from modelyard.project import Project
    from modelyard.registry.versions import resolve
    from modelyard.train.bundle import load_bundle
    from modelyard.train.onnx import OnnxScorer, export_onnx

    project = Project.open(spec)
    try:
        bundle = load_bundle(project.artifacts, resolve(project, f"{MODEL}@champion").digest)
        twin = (bundle.manifest or {}).get("onnx")
        onnx = project.artifacts.get_bytes(twin["digest"]) if twin else None
    finally:
        project.close()
    if onnx is None:  # no twin registered: convert as registration does
        fields = [FeatureField(f"f{i:02d}", "number") for i in range(N_FEATURES)]
        export = export_onnx("lightgbm", model.booster, FeatureEncoder(fields), "binary", model.X)
        onnx = export.data if export else None
    scorers: dict[str, Callable[[np.ndarray], Any]] = {
        "Booster.predict": lambda X: model.booster.predict(X, num_threads=1),
        "bundle.predict (load_bundle)": bundle.predict,
    }
    if onnx is not None:
        scorers["ONNX Runtime (the bundle's ONNX twin)"] = OnnxScorer(onnx).predict
    handler = _bare_handler(model.path)
    affinity = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {0})  # where the pinned servers run
    try:
        results = {
            name: {f"batch {n}": _us_per_row(score, model.X[:n]) for n in (1, 1024)}
            for name, score in scorers.items()
        }
        one_row = {"batch 1": _us_per_row(lambda _: handler(body), model.X[:1])}
        results["bare app handler (parse, predict, dump)"] = one_row
    finally:
        os.sched_setaffinity(0, affinity)
    return results


def _us_per_row(score: Callable[[np.ndarray], Any], X: np.ndarray) -> float:
    calls = 2000 if len(X) == 1 else 60
    for _ in range(calls // 10):
        score(X)
    times = []
    for _ in range(calls):
        start = time.perf_counter_ns()
        score(X)
        times.append(time.perf_counter_ns() - start)
    return statistics.median(times) / 1e3 / len(X)


def _bare_handler(model_path: Path) -> Callable[[bytes], bytes]:
    os.environ["BARE_ASGI_MODEL"] = str(model_path)
    spec = importlib.util.spec_from_file_location("bare_asgi", BENCH_DIR / "bare_asgi.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    handler: Callable[[bytes], bytes] = module.predict
    return handler
