"""Run tracking throughput: modelyard's ``Run`` against MLflow's tracking API, on SQLite.

    .venv/bin/python bench/tracking.py                 # 100 runs x (10 params, 10 keys x 10 steps)
    .venv/bin/python bench/tracking.py --repeat 5 --runs 200

The same workload goes through both: each run logs ``--params`` parameters and
``--keys`` metric keys at ``--steps`` steps, then ends. Both store metadata in
an SQLite file in a fresh temporary folder; the database is created and
migrated *before* the clock starts (``Project.open`` for us; ``MlflowClient``
plus ``create_experiment`` for MLflow), so only the logging is timed, end to
end, with ``time.perf_counter``.

    ours            Run(...) + log_batch(metrics, params) + finish (one transaction per run)
    mlflow batch    create_run + log_batch(metrics, params) + set_terminated, MlflowClient:
                    MLflow's fastest public path
    mlflow naive    mlflow.start_run + log_params + one mlflow.log_metric call per value,
                    as most training scripts are written

Each side runs in its own process and its own virtual environment (MLflow is
not a modelyard dependency), interleaved, ``--repeat`` times; the medians are
printed with ratios. The MLflow side needs a separate venv, git-ignored::

    python3 -m venv .venv-bench && .venv-bench/bin/pip install 'mlflow>=3,<4'

Both sides use their stores as shipped. modelyard runs SQLite in WAL mode with
``synchronous=NORMAL`` (a commit survives a crashed process, the last ones
may be lost on power loss); MLflow uses SQLite's defaults (rollback journal,
``synchronous=FULL``). The line ``ours, synchronous=FULL`` runs our side with
MLflow's durability setting, so the share of the gap that setting explains is
visible.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH_PYTHON = ROOT / ".venv-bench" / "bin" / "python"
SIDES = ("ours", "ours-sync-full", "mlflow-batch", "mlflow-naive")
LABELS = {
    "ours": "ours: Run + log_batch",
    "ours-sync-full": "ours, synchronous=FULL",
    "mlflow-batch": "mlflow: MlflowClient.log_batch",
    "mlflow-naive": "mlflow: log_metric per value",
}
SPEC = "name: bench\ntask: binary\ntarget: target\n"


def workload(
    args: argparse.Namespace, run: int
) -> tuple[dict[str, str], list[tuple[str, float, int]]]:
    """The params and (key, value, step) metrics of one run; the same on both sides."""
    params = {f"param_{i}": str(run * 31 + i) for i in range(args.params)}
    metrics = [
        (f"metric_{k}", ((run + 1) * (k + 3) * (s + 7)) % 1009 / 1009, s)
        for k in range(args.keys)
        for s in range(args.steps)
    ]
    return params, metrics


# ---------------------------------------------------------------------- the sides


def time_ours(args: argparse.Namespace, folder: Path, sync_full: bool = False) -> float:
    from modelyard.project import Project
    from modelyard.train.runs import Run

    os.environ.pop("MODELYARD_DB_URL", None)
    os.environ.pop("MODELYARD_ARTIFACTS", None)
    if sync_full:
        _sqlite_synchronous_full()
    (folder / "modelyard.yaml").write_text(SPEC)
    project = Project.open(folder / "modelyard.yaml")  # creates and migrates the database
    work = [workload(args, i) for i in range(args.runs)]
    started = time.perf_counter()
    for i, (params, metrics) in enumerate(work):
        with Run(project, name=f"run-{i}", seed=i) as run:
            run.log_batch(metrics=metrics, params=params)
    elapsed = time.perf_counter() - started
    _check_ours(project, args)
    project.close()
    return elapsed


def _sqlite_synchronous_full() -> None:
    """Every SQLite transaction of this process runs with ``synchronous=FULL``."""
    import sqlalchemy as sa
    from sqlalchemy import event

    def full(connection: sa.Connection) -> None:
        # Listeners on the class run before the engine's own, so before its BEGIN,
        # where the pragma still takes effect; a "connect" listener would be overridden.
        connection.exec_driver_sql("PRAGMA synchronous = FULL")

    event.listen(sa.Engine, "begin", full)


def _check_ours(project: Any, args: argparse.Namespace) -> None:
    from modelyard.train.runs import get_run, list_runs

    runs = list_runs(project, limit=args.runs + 1)
    assert len(runs) == args.runs, len(runs)
    record = get_run(project, runs[0].id)
    assert len(record.params) == args.params
    assert sum(len(h) for h in record.history.values()) == args.keys * args.steps


def time_mlflow(args: argparse.Namespace, folder: Path, naive: bool) -> float:
    import mlflow
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    os.chdir(folder)  # artifact folders, if any, land here
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("bench")  # creates and migrates the database
    work = [workload(args, i) for i in range(args.runs)]
    started = time.perf_counter()
    if naive:
        for i, (params, metrics) in enumerate(work):
            with mlflow.start_run(experiment_id=experiment, run_name=f"run-{i}"):
                mlflow.log_params(params)
                for key, value, step in metrics:
                    mlflow.log_metric(key, value, step=step)
    else:
        for i, (params, metrics) in enumerate(work):
            run_id = client.create_run(experiment, run_name=f"run-{i}").info.run_id
            now = int(time.time() * 1000)
            client.log_batch(
                run_id,
                metrics=[Metric(k, v, now, s) for k, v, s in metrics],
                params=[Param(k, v) for k, v in params.items()],
            )
            client.set_terminated(run_id)
    elapsed = time.perf_counter() - started
    runs = client.search_runs([experiment], max_results=args.runs + 1)
    assert len(runs) == args.runs, len(runs)
    assert len(runs[0].data.params) == args.params
    return elapsed


def worker(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix=f"bench-tracking-{args.side}-") as tmp:
        folder = Path(tmp)
        if args.side.startswith("ours"):
            seconds = time_ours(args, folder, sync_full=args.side == "ours-sync-full")
        else:
            seconds = time_mlflow(args, folder, naive=args.side == "mlflow-naive")
        os.chdir(ROOT)
    print(json.dumps({"side": args.side, "seconds": seconds}))


# ---------------------------------------------------------------------- the driver


def measure(args: argparse.Namespace, side: str) -> float:
    python = args.mlflow_python if side.startswith("mlflow") else Path(sys.executable)
    command = [
        str(python),
        __file__,
        "--side",
        side,
        *("--runs", str(args.runs), "--params", str(args.params)),
        *("--keys", str(args.keys), "--steps", str(args.steps)),
    ]
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "MLFLOW_ENABLE_ASYNC_LOGGING": "false"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        sys.exit(f"{side} failed:\n{done.stderr[-3000:]}")
    return float(json.loads(done.stdout.strip().splitlines()[-1])["seconds"])


def main(args: argparse.Namespace) -> None:
    sides = [s for s in SIDES if not (args.skip_naive and s == "mlflow-naive")]
    if not args.mlflow_python.exists():
        sys.exit(
            f"No MLflow interpreter at {args.mlflow_python}. Create it with\n"
            "  python3 -m venv .venv-bench && .venv-bench/bin/pip install 'mlflow>=3,<4'\n"
            "or pass --mlflow-python PATH."
        )
    version = subprocess.run(
        [str(args.mlflow_python), "-c", "import mlflow; print(mlflow.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    print(
        f"{args.runs} runs x ({args.params} params, {args.keys} metric keys x {args.steps} steps "
        f"= {args.keys * args.steps} values), SQLite, median of {args.repeat}; MLflow {version}"
    )
    times: dict[str, list[float]] = {side: [] for side in sides}
    for repeat in range(args.repeat):
        for side in sides:  # interleaved, so drift on the machine hits every side alike
            times[side].append(measure(args, side))
        print(
            f"  repeat {repeat + 1}: " + ", ".join(f"{s} {t[-1]:.3f} s" for s, t in times.items())
        )
    median = {side: statistics.median(t) for side, t in times.items()}
    ours = median["ours"]
    print(f"\n{'':32} {'seconds':>9} {'runs/s':>9} {'vs ours':>9}")
    for side in sides:
        ratio = median[side] / ours
        print(
            f"{LABELS[side]:32} {median[side]:9.3f} {args.runs / median[side]:9.0f} {ratio:8.1f}x"
        )
    print(
        f"\nours is {median['mlflow-batch'] / ours:.1f}x faster than MLflow's log_batch"
        + (
            f" and {median['mlflow-naive'] / ours:.0f}x faster than its log_metric loop"
            if "mlflow-naive" in median
            else ""
        )
        + " (target: at least 10x)."
    )


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--params", type=int, default=10)
    parser.add_argument("--keys", type=int, default=10)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-naive", action="store_true", help="Leave out the slow loop.")
    parser.add_argument("--mlflow-python", type=Path, default=BENCH_PYTHON)
    parser.add_argument("--side", choices=SIDES, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse()
    if arguments.side:
        worker(arguments)
    else:
        main(arguments)
