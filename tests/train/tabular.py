"""Small generated projects for every task: a spec, a frame with numbers, missing
values and a category, and a target that depends on them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from modelyard.project import Project

SPECS = {
    "binary": """\
name: tabular
task: binary
target: y
positive_class: "yes"
columns:
  id: row_id
metrics:
  - name: roc_auc
    threshold: 0.6
  - name: recall
""",
    "multiclass": """\
name: tabular
task: multiclass
target: y
columns:
  id: row_id
metrics:
  - name: f1_macro
    threshold: 0.3
  - name: accuracy
  - name: roc_auc
""",
    "regression": """\
name: tabular
task: regression
target: y
columns:
  id: row_id
cleaning:
  - step: clip_outliers
    columns: [x1]
    method: quantile
    quantiles: [0.01, 0.99]
metrics:
  - name: rmse
  - name: r2
    threshold: 0.2
""",
}


def make_tabular(task: str, rows: int = 1_500, seed: int = 0) -> pd.DataFrame:
    """Three numbers (one with gaps), one category; the target follows them plus noise."""
    rng = np.random.default_rng(seed)
    x1, x2, x3 = rng.normal(size=(3, rows))
    colour = rng.choice(["red", "green", "blue"], rows)
    signal = 1.5 * x1 - x2 + 0.8 * (colour == "red") + 0.5 * x3 * x1
    x2 = np.where(rng.random(rows) < 0.1, np.nan, x2)
    frame = pd.DataFrame(
        {"row_id": np.arange(rows), "x1": x1, "x2": x2, "x3": x3, "colour": colour}
    )
    noisy = signal + rng.normal(scale=0.8, size=rows)
    if task == "binary":
        frame["y"] = np.where(noisy > 1.0, "yes", "no")
    elif task == "multiclass":
        frame["y"] = np.select([noisy < -0.8, noisy < 0.8], ["low", "mid"], "high")
    else:
        frame["y"] = 10.0 + 3.0 * noisy
    return frame


def open_tabular(folder: Path, task: str, extra: str = "") -> Project:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "modelyard.yaml").write_text(SPECS[task] + extra)
    return Project.open(folder / "modelyard.yaml")
