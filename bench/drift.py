"""Drift detection on 1,000,000 rows x 50 features: modelyard vs Evidently's DataDriftPreset.

    python3 -m venv .venv-drift
    .venv-drift/bin/pip install 'evidently>=0.7,<0.8' pyarrow 'pandas<3'   # 0.7 breaks on pandas 3
    .venv/bin/python bench/drift.py                  # 4-5 minutes idle, nearly all of it Evidently
    .venv/bin/python bench/drift.py --skip-evidently # ours only, seconds
    .venv/bin/python bench/drift.py --rows 100000    # a quick run

Writes three Parquet files into a temporary folder (``--keep DIR`` keeps
them there): a reference, a current sample with planted drift, and a second
current sample drawn from the reference's own distribution. 50 features:

- 35 numbers: 10 full-precision floats (x, all values distinct), 10 amounts in
  cents (m, mostly distinct), 5 rates rounded to 0.01 (r), 5 counts (k,
  Poisson) and 5 columns with 2-5 values (f: flags, terms, ratings);
  2-5 % missing in x00-x04, m00-m02 and r00-r01;
- 15 categories with 2 to 50 values (c), 1 % missing in c00-c04.

Planted in the current sample: x00 shifts by 0.5 sd, m00 scales by 1.3,
k00's mean goes 0.3 -> 0.45, f00's flag rate 0.2 -> 0.3, c00's shares move,
c01 gets a new category on 8 % of rows, and x02's missing rate goes 2 % ->
12 % with its values unchanged. Decoys that must not be flagged: x01 shifts
by 0.02 sd and c02's shares by half a point (both "significant" by p-value
at this size, neither material).

Each side runs in its own process on the same files and reports its own
work time (reading the Parquet files to the per-column results; imports
excluded) and CPU time (all its threads); "wall" is the whole child process,
start-up and imports included. Ours runs with modelyard's default tests
(``modelyard.monitor.drift``), reading and comparing columns on up to 4
threads (one per core), ``--repeat`` times (3): the best times count, and
the highest peak memory. Evidently 0.7 runs once (minutes a run), as it
ships: ``DataDriftPreset()`` with a DataDefinition naming the numeric and
categorical columns. Peak memory is the child's maximum resident set
(``os.wait4``), interpreter and libraries included. On a busy machine the
CPU-time ratio is the steadier one: wall times depend on what else runs.

Where both compute the same statistic with the same binning the values are
compared: normalised Wasserstein on every number Evidently tests with it,
and Jensen-Shannon on every column Evidently tests with it (categories and
numbers with at most 5 values, binned by value on both sides; Evidently's
natural-log distance = ours x sqrt(ln 2)).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
EVIDENTLY_PYTHON = ROOT / ".venv-drift" / "bin" / "python"
PLANTED = ["x00", "m00", "k00", "f00", "c00", "c01", "x02"]
DECOYS = ["x01", "c02"]


# ---------------------------------------------------------------------- data


def numeric_names() -> list[str]:
    groups = {"x": 10, "m": 10, "r": 5, "k": 5, "f": 5}
    return [f"{prefix}{i:02d}" for prefix, count in groups.items() for i in range(count)]


def categorical_names() -> list[str]:
    return [f"c{i:02d}" for i in range(15)]


def make_table(rows: int, seed: int, drifted: bool) -> pa.Table:
    """One sample; ``drifted`` plants the changes listed in the module docstring."""
    rng = np.random.default_rng(seed)
    columns: dict[str, pa.Array] = {}
    for i in range(10):
        shift = {0: 0.5, 1: 0.02}.get(i, 0.0) if drifted else 0.0
        values = rng.normal(10 * i + shift * (1 + i), 1 + i, rows)
        missing = 0.12 if drifted and i == 2 else 0.02 if i < 5 else 0.0
        columns[f"x{i:02d}"] = _with_missing(rng, values, missing)
    for i in range(10):
        scale = 1.3 if drifted and i == 0 else 1.0
        values = np.round(rng.lognormal(7 + 0.2 * i, 0.8, rows) * scale, 2)
        columns[f"m{i:02d}"] = _with_missing(rng, values, 0.03 if i < 3 else 0.0)
    for i in range(5):
        values = np.round(rng.normal(12 + i, 3, rows).clip(0, 40), 2)
        columns[f"r{i:02d}"] = _with_missing(rng, values, 0.05 if i < 2 else 0.0)
    for i, mean in enumerate([0.3, 1.0, 3.0, 8.0, 20.0]):
        moved = 0.45 if drifted and i == 0 else mean
        columns[f"k{i:02d}"] = pa.array(rng.poisson(moved, rows))
    columns["f00"] = pa.array((rng.random(rows) < (0.3 if drifted else 0.2)).astype(np.int64))
    columns["f01"] = pa.array(rng.choice([36, 60], rows, p=[0.7, 0.3]))
    columns["f02"] = pa.array(rng.integers(1, 6, rows))
    columns["f03"] = pa.array(rng.choice([0, 1, 2], rows, p=[0.6, 0.3, 0.1]))
    columns["f04"] = pa.array((rng.random(rows) < 0.05).astype(np.int64))
    for i in range(15):
        columns[f"c{i:02d}"] = _categories(rng, rows, i, drifted)
    return pa.table(columns)


def _with_missing(rng: np.random.Generator, values: np.ndarray, share: float) -> pa.Array:
    return pa.array(values, mask=rng.random(len(values)) < share) if share else pa.array(values)


def _categories(rng: np.random.Generator, rows: int, i: int, drifted: bool) -> pa.Array:
    size = 2 + (i * 48) // 14  # 2 ... 50 categories
    weights = 1.0 / np.arange(1, size + 1) ** 0.8
    shares = weights / weights.sum()
    labels = np.array([f"c{i}_v{k}" for k in range(size)], dtype=object)
    if drifted and i == 0:
        shares = shares[::-1].copy()  # the rare values become the common ones
    if drifted and i == 2:
        shares[:2] += [-0.005, 0.005]
    picked = labels[rng.choice(size, rows, p=shares)]
    if drifted and i == 1:
        picked[rng.random(rows) < 0.08] = "c1_new"
    mask = rng.random(rows) < 0.01 if i < 5 else None
    return pa.array(picked, pa.string(), mask=mask)


# ---------------------------------------------------------------------- the two sides (children)


def run_ours(reference: str, current: str, out: str) -> None:
    from modelyard.monitor.drift import compare

    started, cpu = time.perf_counter(), time.process_time()
    report = compare(reference, current, numeric_names() + categorical_names())
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    columns = {
        f.feature: {
            "test": f.test,
            "value": f.value,
            "drifted": f.drifted,
            "statistics": f.statistics,
            "missing": [f.missing_reference, f.missing_current],
        }
        for f in report.features
    }
    Path(out).write_text(json.dumps({"seconds": seconds, "cpu": cpu, "columns": columns}))


def run_evidently(reference: str, current: str, out: str) -> None:
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    started, cpu = time.perf_counter(), time.process_time()
    ref, cur = pd.read_parquet(reference), pd.read_parquet(current)
    definition = DataDefinition(
        numerical_columns=numeric_names(), categorical_columns=categorical_names()
    )
    snapshot = Report([DataDriftPreset()]).run(
        Dataset.from_pandas(cur, data_definition=definition),
        Dataset.from_pandas(ref, data_definition=definition),
    )
    columns = {}
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        if config.get("type", "").endswith("ValueDrift"):
            value = float(metric["value"])
            columns[config["column"]] = {
                "test": config["method"],
                "value": value,
                "drifted": value >= config["threshold"],
            }
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    Path(out).write_text(json.dumps({"seconds": seconds, "cpu": cpu, "columns": columns}))


# ---------------------------------------------------------------------- the parent


def measure(python: Path, side: str, files: list[Path], out: Path) -> dict[str, Any]:
    """Run one side in a child process; its result plus wall time and peak RSS."""
    command = [str(python), __file__, "--run", side, *map(str, files), str(out)]
    started = time.perf_counter()
    child = subprocess.Popen(command)
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    if child.returncode != 0:
        sys.exit(f"{side} failed with exit code {child.returncode}")
    result: dict[str, Any] = json.loads(out.read_text())
    result.update(wall=wall, peak_mb=usage.ru_maxrss / 1024)
    return result


def best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The fastest run's results, with the best CPU time and the highest peak memory of all."""
    fastest = dict(min(runs, key=lambda r: r["seconds"]))
    fastest["cpu"] = min(r["cpu"] for r in runs)
    fastest["wall"] = min(r["wall"] for r in runs)
    fastest["peak_mb"] = max(r["peak_mb"] for r in runs)
    return fastest


def compare_values(ours: dict[str, Any], peer: dict[str, Any]) -> list[str]:
    """Max absolute difference per statistic where both computed the same one."""
    lines = []
    for method, key, scale in (
        ("Wasserstein distance (normed)", "wasserstein", 1.0),
        ("Jensen-Shannon distance", "jensenshannon", math.sqrt(math.log(2))),
    ):
        gaps = {
            name: abs(ours["columns"][name]["statistics"][key] * scale - column["value"])
            for name, column in peer["columns"].items()
            if column["test"] == method
        }
        if gaps:
            worst = max(gaps, key=lambda k: gaps[k])
            lines.append(
                f"{key:14} {len(gaps):2d} columns, max |ours - Evidently| = "
                f"{gaps[worst]:.2e} ({worst})"
            )
    return lines


def flagged(result: dict[str, Any]) -> list[str]:
    return sorted(name for name, c in result["columns"].items() if c["drifted"])


def report(ours: dict[str, Any], same: dict[str, Any], peer: dict[str, Any] | None) -> None:
    print(f"\n{'side':30} {'work s':>8} {'CPU s':>8} {'wall s':>8} {'peak MB':>9}")
    sides = [("modelyard (drifted sample)", ours), ("modelyard (same distribution)", same)]
    if peer is not None:
        sides.append(("Evidently DataDriftPreset", peer))
    for name, result in sides:
        print(
            f"{name:30} {result['seconds']:8.2f} {result['cpu']:8.2f} {result['wall']:8.2f} "
            f"{result['peak_mb']:9.0f}"
        )
    print(f"\nplanted drift: {', '.join(sorted(PLANTED))}; decoys: {', '.join(DECOYS)}")
    print(f"modelyard flags:   {', '.join(flagged(ours))}")
    missed = sorted(set(PLANTED) - set(flagged(ours)))
    wrong = sorted(set(flagged(ours)) - set(PLANTED))
    print(f"  missed {missed or 'none'}, wrongly flagged {wrong or 'none'}")
    x02 = ours["columns"]["x02"]
    print(f"  x02 missing rate {x02['missing'][0]:.1%} -> {x02['missing'][1]:.1%} detected")
    print(f"same distribution: {len(flagged(same))} of 50 flagged {flagged(same) or ''}")
    if peer is None:
        return
    print(f"Evidently flags:   {', '.join(flagged(peer))}")
    print(f"  missed {sorted(set(PLANTED) - set(flagged(peer))) or 'none'}")
    print("\nsame statistic, same binning:")
    for line in compare_values(ours, peer):
        print("  " + line)
    print("\nEvidently / modelyard (target: at least 50x the time, 4x the peak memory):")
    for label, key in (("work time", "seconds"), ("CPU time", "cpu"), ("process wall", "wall")):
        print(f"  {label:13} {peer[key] / ours[key]:6.1f}x")
    print(f"  {'peak memory':13} {peer['peak_mb'] / ours['peak_mb']:6.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--keep", type=Path, help="write the data here and keep it")
    parser.add_argument("--skip-evidently", action="store_true")
    parser.add_argument("--repeat", type=int, default=3, help="runs of ours; the best counts")
    parser.add_argument("--run", nargs=4, metavar=("SIDE", "REF", "CUR", "OUT"), help="internal")
    args = parser.parse_args()
    if args.run:
        side, reference, current, out = args.run
        (run_ours if side == "ours" else run_evidently)(reference, current, out)
        return
    if not args.skip_evidently and not EVIDENTLY_PYTHON.exists():
        sys.exit(f"{EVIDENTLY_PYTHON} is missing; create it as the module docstring shows.")
    folder = args.keep or Path(tempfile.mkdtemp(prefix="modelyard-drift-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        files = {
            "reference": (1, False),
            "current": (2, True),
            "same": (3, False),
        }
        for name, (seed, drifted) in files.items():
            path = folder / f"{name}-{args.rows}.parquet"
            if not path.exists():
                pq.write_table(make_table(args.rows, seed, drifted), path)
        ref, cur, same = (folder / f"{n}-{args.rows}.parquet" for n in files)
        print(f"{args.rows:,} rows x 50 features, files in {folder}")
        python = Path(sys.executable)
        runs = [
            measure(python, "ours", [ref, cur], folder / "ours.json") for _ in range(args.repeat)
        ]
        ours = best(runs)
        same_result = measure(python, "ours", [ref, same], folder / "same.json")
        peer = None
        if not args.skip_evidently:
            peer = measure(EVIDENTLY_PYTHON, "evidently", [ref, cur], folder / "evidently.json")
        report(ours, same_result, peer)
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
