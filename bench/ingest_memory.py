"""Peak memory and wall time of `modelyard data add` and `data validate` on a large CSV.

    python bench/ingest_memory.py                 # 2,000,000 rows x 40 columns
    python bench/ingest_memory.py --rows 200000   # a quick run

Generates a CSV (an id, 25 float columns with ~2 % nulls, 6 integer columns,
7 categorical columns with ~1 % nulls, a target) into a temporary folder,
then runs each command in its own process under ``/usr/bin/time -v`` (install
with ``apt-get install -y time``) and prints its wall time and peak resident
memory. The peer is ``pandas.read_csv`` of the same file, the usual one-shot
way to load it; its peak memory is reported next to ours as a ratio. A bare
``import modelyard.data.datasets`` is measured too, to show the fixed cost of
the libraries themselves.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

SPEC = """\
name: bench
task: binary
target: target
columns:
  id: row_id
"""
CHUNK_ROWS = 200_000
CATEGORIES = ["north", "south", "east", "west", "central", "overseas", "unknown"]


def generate(path: Path, rows: int, seed: int = 0) -> None:
    """Write the CSV chunk by chunk, so generating it needs little memory too."""
    rng = np.random.default_rng(seed)
    with pacsv.CSVWriter(path, _chunk(rng, 0, 1).schema) as writer:
        for start in range(0, rows, CHUNK_ROWS):
            writer.write_table(_chunk(rng, start, min(CHUNK_ROWS, rows - start)))


def _chunk(rng: np.random.Generator, start: int, n: int) -> pa.Table:
    columns: dict[str, pa.Array] = {"row_id": pa.array(np.arange(start, start + n))}
    for i in range(25):
        values = rng.normal(100 * i, 10 + i, n).round(3)
        columns[f"x{i:02d}"] = pa.array(values, mask=rng.random(n) < 0.02)
    for i in range(6):
        columns[f"n{i}"] = pa.array(rng.integers(0, 10 ** (i + 1), n))
    for i in range(7):
        picked = np.array(CATEGORIES[: 3 + i // 2])[rng.integers(0, 3 + i // 2, n)]
        columns[f"c{i}"] = pa.array(picked, mask=rng.random(n) < 0.01)
    columns["target"] = pa.array(rng.integers(0, 2, n))
    return pa.table(columns)


def measure(command: list[str], cwd: Path) -> tuple[float, float, str]:
    """(wall seconds, peak RSS in MB, stdout) of ``command`` under /usr/bin/time -v."""
    done = subprocess.run(
        ["/usr/bin/time", "-v", *command], cwd=cwd, capture_output=True, text=True, check=False
    )
    report = done.stderr
    if done.returncode not in (0, 1):  # validate exits 1 when a check fails
        sys.exit(f"{' '.join(command)} failed ({done.returncode}):\n{report[-3000:]}")
    rss = float(_field(report, r"Maximum resident set size \(kbytes\): (\d+)")) / 1024
    clock = _field(report, r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)")
    seconds = sum(float(part) * 60**i for i, part in enumerate(reversed(clock.split(":"))))
    return seconds, rss, done.stdout


def _field(report: str, pattern: str) -> str:
    found = re.search(pattern, report)
    if found is None:
        sys.exit(f"/usr/bin/time printed no {pattern!r}:\n{report[-2000:]}")
    return found[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    if not Path("/usr/bin/time").exists():
        sys.exit("/usr/bin/time is missing: apt-get install -y time")

    folder = Path(tempfile.mkdtemp(prefix="modelyard-bench-"))
    try:
        (folder / "modelyard.yaml").write_text(SPEC)
        csv = folder / "big.csv"
        generate(csv, args.rows)
        size_mb = csv.stat().st_size / 1e6
        print(f"CSV: {args.rows:,} rows x 40 columns, {size_mb:,.0f} MB ({csv})")

        python = sys.executable
        runs = {
            "import modelyard (baseline)": [python, "-c", "import modelyard.data.datasets"],
            "modelyard data add": [python, "-m", "modelyard", "data", "add", "big", str(csv)],
            "modelyard data validate": [python, "-m", "modelyard", "data", "validate", "big@1"],
            "pandas.read_csv (peer)": [
                python,
                "-c",
                f"import pandas as pd; f = pd.read_csv({str(csv)!r}); print(len(f))",
            ],
        }
        results = {name: measure(command, folder) for name, command in runs.items()}
        print(f"\n{'step':30} {'wall s':>8} {'peak RSS MB':>12}")
        for name, (seconds, rss, _) in results.items():
            print(f"{name:30} {seconds:8.1f} {rss:12.0f}")
        peer = results["pandas.read_csv (peer)"][1]
        for name in ("modelyard data add", "modelyard data validate"):
            ratio = peer / results[name][1]
            print(f"pandas.read_csv peak RSS / {name} peak RSS = {ratio:.1f}x")
        add_output = results["modelyard data add"][2].strip().splitlines()
        print("\n" + "\n".join(add_output[-2:]))
    finally:
        if args.keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
