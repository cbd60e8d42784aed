"""Rows/s and peak memory of `modelyard predict` on a large Parquet file, against the raw model.

    python bench/batch_scoring.py                   # 5,000,000 rows x 30 features
    python bench/batch_scoring.py --rows 500000     # a quick run

Generates a Parquet file (30 float64 features, ~1 % nulls, row groups of 250,000 rows)
in a temporary folder, trains a binary LightGBM model on 100,000 of its rows (200 trees
of 31 leaves) and registers it as ``bench@champion`` in a fresh project. Then, in one run:

raw     ``Booster.predict`` over the same rows, already in memory as one float64 matrix,
        in slices of the same chunk size, with LightGBM's default thread count (what
        ``modelyard predict`` uses);
ours    ``python -m modelyard predict bench@champion --input … --output …`` as a
        subprocess: wall time from start to exit (interpreter, imports and model load
        included) and the command's own time, and the subprocess's peak RSS (from
        ``/proc/PID/status``, VmHWM);
resume  the same command killed (SIGKILL) after a few chunks, then run again: the output
        must hold every row once, and the scores must equal the raw model's.

It prints rows/s for both, the ratios (the acceptance bar: ours ≥ 0.8 × raw, peak RSS
< 1.5 GB) and the resume check. Raw and ours alternate ``--repeat`` times.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import lightgbm
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from modelyard.data.encoding import FeatureEncoder, FeatureField
from modelyard.project import Project
from modelyard.registry.versions import register_model
from modelyard.train.bundle import ModelBundle

SPEC = """\
name: bench
task: binary
target: y
"""
FEATURES = [f"x{i:02d}" for i in range(30)]
WRITE_ROWS = 250_000
TRAIN_ROWS = 100_000
CHUNK_ROWS = 100_000
MODEL = "bench@champion"


def generate(path: Path, rows: int, seed: int = 0) -> None:
    """The input file, written a row group at a time (little memory to generate it)."""
    rng = np.random.default_rng(seed)
    weights = rng.normal(0, 1, len(FEATURES))
    schema = pa.schema([*(pa.field(f, pa.float64()) for f in FEATURES), ("y", pa.int64())])
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, rows, WRITE_ROWS):
            n = min(WRITE_ROWS, rows - start)
            X = rng.normal(0, 1, (n, len(FEATURES)))
            logit = X @ weights / 3 + np.sin(3 * X[:, 0]) + X[:, 1] * X[:, 2]
            y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
            columns = [pa.array(X[:, j], mask=rng.random(n) < 0.01) for j in range(X.shape[1])]
            writer.write_table(pa.table([*columns, pa.array(y)], schema=schema))


def register(folder: Path, data: Path) -> lightgbm.Booster:
    """Train the model on the file's first rows and register it as bench@champion."""
    head = pq.ParquetFile(data).iter_batches(batch_size=TRAIN_ROWS).__next__()
    X = np.column_stack([head.column(f).to_numpy(zero_copy_only=False) for f in FEATURES])
    params = {"objective": "binary", "num_leaves": 31, "verbose": -1, "seed": 0}
    booster = lightgbm.train(
        params, lightgbm.Dataset(X, head.column("y").to_numpy()), num_boost_round=200
    )
    model_bytes = booster.model_to_string().encode()
    encoder = FeatureEncoder([FeatureField(f, "number") for f in FEATURES])
    bundle = ModelBundle.from_bytes("lightgbm", model_bytes, encoder, "binary", "y")
    (folder / "modelyard.yaml").write_text(SPEC)
    project = Project.open(folder / "modelyard.yaml")
    try:
        blob = bundle.save(project.artifacts, model_bytes)
        register_model(
            project,
            "bench",
            digest=blob.digest,
            flavor="lightgbm",
            run_id=None,
            signature=encoder.to_dict(),
            metrics={},
            gates=[],
            aliases=("champion",),
        )
    finally:
        project.close()
    return booster


def load_matrix(path: Path) -> np.ndarray:
    """Every row as one C-ordered float64 matrix (NaN for null), as the raw side gets it."""
    file = pq.ParquetFile(path)
    X = np.empty((file.metadata.num_rows, len(FEATURES)))
    start = 0
    for batch in file.iter_batches(batch_size=WRITE_ROWS, columns=FEATURES):
        for j, name in enumerate(FEATURES):
            X[start : start + batch.num_rows, j] = batch.column(name).to_numpy(zero_copy_only=False)
        start += batch.num_rows
    return X


def raw_rows_per_second(booster: lightgbm.Booster, X: np.ndarray) -> tuple[float, np.ndarray]:
    scores = np.empty(len(X))
    started = time.perf_counter()
    for start in range(0, len(X), CHUNK_ROWS):
        scores[start : start + CHUNK_ROWS] = booster.predict(X[start : start + CHUNK_ROWS])
    return len(X) / (time.perf_counter() - started), scores


def predict_command(folder: Path, data: Path, output: Path) -> list[str]:
    spec = str(folder / "modelyard.yaml")
    return [
        *(sys.executable, "-m", "modelyard", "--spec", spec, "predict", MODEL),
        *("--input", str(data), "--output", str(output), "--chunk-rows", str(CHUNK_ROWS)),
    ]


def run_ours(command: list[str], rows: int) -> tuple[float, float, float]:
    """(wall rows/s, the command's own rows/s, peak RSS in MB) of one run."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as printed:
        process = subprocess.Popen(command, stdout=printed, stderr=subprocess.STDOUT)
        peak = watch_peak_rss(process)
        wall = time.perf_counter() - started
        printed.seek(0)
        text = printed.read().decode()
    if process.returncode:
        sys.exit(f"{' '.join(command)} failed ({process.returncode}):\n{text[-3000:]}")
    found = re.search(r"\(([\d,]+) rows/s\)", text.replace("\n", " "))
    own = float(found.group(1).replace(",", "")) if found else float("nan")
    return rows / wall, own, peak


def watch_peak_rss(process: subprocess.Popen[bytes]) -> float:
    """The process's peak RSS in MB (VmHWM), read until it exits.

    Not ``getrusage``: Linux carries a forked child's maximum RSS over from before its
    exec, so a child of this (large) process would report this process's size."""
    status = Path(f"/proc/{process.pid}/status")
    peak = 0.0
    while process.poll() is None:
        try:
            found = re.search(r"VmHWM:\s+(\d+) kB", status.read_text())
        except OSError:  # it has just exited
            break
        if found:
            peak = max(peak, int(found.group(1)) / 1024)
        time.sleep(0.01)
    process.wait()
    return peak


def check_resume(command: list[str], output: Path, expected: np.ndarray) -> str:
    """Kill a run after a few chunks, run it again, and check every row is there once."""
    parts = output.with_name(f"{output.name}.parts")
    kill_after = max(1, min(5, len(expected) // CHUNK_ROWS // 2))
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while process.poll() is None and len(list(parts.glob("part-*.parquet"))) < kill_after:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_after = len(list(parts.glob("part-*.parquet")))
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    resumed = re.search(r"Resumed an interrupted run: (\d+) of (\d+) chunks", done.stdout)
    table = pq.read_table(output, columns=["row", "probability"])
    rows = table.column("row").to_numpy()
    exact = bool(np.array_equal(rows, np.arange(len(expected))))
    diff = float(np.abs(table.column("probability").to_numpy() - expected[rows]).max())
    verdict = "ok" if exact and resumed and diff <= 1e-12 else "FAILED"
    return (
        f"killed after {killed_after} chunks; rerun resumed "
        f"{resumed.group(1) if resumed else 'NO'} of {resumed.group(2) if resumed else '?'} "
        f"chunks; rows 0..{len(expected) - 1} each exactly once: {exact}; "
        f"max |score - raw| = {diff:.1e} → {verdict}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="modelyard-batch-") as tmp:
        folder = Path(tmp)
        data, output = folder / "input.parquet", folder / "scores.parquet"
        started = time.perf_counter()
        generate(data, args.rows)
        booster = register(folder, data)
        X = load_matrix(data)
        print(
            f"{args.rows:,} rows x {len(FEATURES)} features "
            f"({data.stat().st_size / 1e6:,.0f} MB Parquet), LightGBM 200 trees x 31 leaves, "
            f"chunks of {CHUNK_ROWS:,} rows, {os.cpu_count()} cores; "
            f"set up in {time.perf_counter() - started:.0f} s"
        )
        command = predict_command(folder, data, output)
        raw, ours = [], []
        for _ in range(args.repeat):
            rate, expected = raw_rows_per_second(booster, X)
            raw.append(rate)
            ours.append(run_ours(command, args.rows))
            print(
                f"raw Booster.predict {rate:>10,.0f} rows/s | modelyard predict "
                f"{ours[-1][0]:>10,.0f} rows/s end to end ({ours[-1][0] / rate:.2f}x), "
                f"{ours[-1][1]:>10,.0f} in the command ({ours[-1][1] / rate:.2f}x), "
                f"peak RSS {ours[-1][2]:,.0f} MB"
            )
        paired = statistics.median(o[0] / r for o, r in zip(ours, raw, strict=True))
        best = max(o[0] for o in ours) / max(raw)
        peak = max(o[2] for o in ours)
        print(
            f"ours/raw end to end: {paired:.2f} (median of runs), {best:.2f} (best of "
            f"{args.repeat} each); bar ≥ 0.80. Peak RSS {peak:,.0f} MB; bar < 1,536 MB."
        )
        del X
        print("resume: " + check_resume(command, output, expected))


if __name__ == "__main__":
    main()
