"""How long a full evaluation of one million rows takes on this machine.

Trains the demo champion on 50,000 rows, registers a 1,000,000-row evaluation
set, then times ``evaluate_version`` with every section (metrics and curves on
all rows, named slices and fairness on all rows, worst-slice search on its
50,000-row sample, robustness on its 5,000-row sample, bootstrap intervals)
and prints the seconds per stage of the set-up and the evaluation.

    .venv/bin/python bench/evaluate_scale.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()

    from modelyard.data.datasets import add_dataset
    from modelyard.data.demo import DEMO_SPEC, make_loans
    from modelyard.project import Project
    from modelyard.registry.evaluation import evaluate_version
    from modelyard.registry.versions import register_candidate
    from modelyard.train.trainer import train_candidates

    with tempfile.TemporaryDirectory() as folder:
        spec = Path(folder) / "modelyard.yaml"
        spec.write_text(DEMO_SPEC)
        project = Project.open(spec)
        started = time.perf_counter()
        train = make_loans(50_000, recent_share=0.0, seed=1)
        dataset = add_dataset(project, "loans", train)
        best = train_candidates(project, dataset, train, families=["lightgbm"])[0]
        register_candidate(project, "loans", best, created_by="bench")
        print(f"train 50k rows + register: {time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        add_dataset(project, "holdout", make_loans(args.rows, recent_share=0.0, seed=2))
        print(f"generate + register {args.rows:,} rows: {time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        evaluation = evaluate_version(project, "loans@1", "holdout@1")
        seconds = time.perf_counter() - started
        print(
            f"evaluate {args.rows:,} rows, every section: {seconds:.1f} s "
            f"(roc_auc {evaluation['metrics']['roc_auc']:.4f})"
        )


if __name__ == "__main__":
    main()
