"""``modelyard quickstart``: the whole lifecycle, thin but real, on the demo data.

Generate loan applications → register them as dataset versions → train a
majority-class and a logistic baseline and LightGBM on one recorded split →
evaluate them (held-out test rows and the later, drifted period) against the
spec's gates → register the best as the next version of ``loans`` with alias
``champion`` →
start the inference server on a free port → send real HTTP requests from the
drifted period → check the server's answers against the model in-process →
stop the server. Every stage reports progress through ``on_stage``.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from modelyard.errors import ServingError
from modelyard.evaluate.gates import check_gates

Stage = Callable[[str, str], None]
#: The families the quickstart trains: two baselines and one boosted model.
FAMILIES = ["majority", "logistic", "lightgbm"]


@dataclass
class QuickstartResult:
    """What the quickstart did, for printing and for tests."""

    folder: Path
    datasets: list[str]
    candidates: list[dict[str, Any]]
    champion: str
    requests: int = 0
    failed_requests: int = 0
    latency_ms: dict[str, float] = field(default_factory=dict)
    max_score_difference: float = 0.0
    slo_gates: list[dict[str, Any]] = field(default_factory=list)
    store: str = ""
    artifacts: str = ""


def run_quickstart(
    folder: Path,
    *,
    rows: int = 50_000,
    requests: int = 1_000,
    on_stage: Stage | None = None,
    on_request: Callable[[int], None] | None = None,
) -> QuickstartResult:
    """Run every stage in ``folder`` (created if needed) and return what happened."""
    from modelyard.data.datasets import add_dataset
    from modelyard.data.demo import DEMO_SPEC, make_loans
    from modelyard.project import Project
    from modelyard.registry.versions import register_candidate
    from modelyard.train.trainer import binary_target, train_candidates

    def stage(name: str, detail: str = "") -> None:
        if on_stage:
            on_stage(name, detail)

    folder.mkdir(parents=True, exist_ok=True)
    spec_path = folder / "modelyard.yaml"
    if not spec_path.exists():
        spec_path.write_text(DEMO_SPEC)
    project = Project.open(spec_path)

    stage("data", f"generating {rows:,} loan applications")
    frame = make_loans(rows)
    reference = frame[frame["period"] == "reference"].reset_index(drop=True)
    recent = frame[frame["period"] == "recent"].reset_index(drop=True)
    ref_version = add_dataset(project, "loans", reference)
    recent_version = add_dataset(project, "loans-recent", recent)

    stage("train", "baselines and LightGBM on one stratified split")

    def on_candidate(name: str, step: str) -> None:
        if step == "fit":
            stage("train", f"fitting {name}")

    results = train_candidates(
        project, ref_version, reference, families=FAMILIES, progress=on_candidate
    )

    stage("evaluate", "test rows and the drifted recent period, against the spec's gates")
    from sklearn.metrics import roc_auc_score

    y_recent = binary_target(project.spec, recent)
    candidates = []
    for r in results:
        if r.bundle is None:
            continue
        recent_proba = r.bundle.score_frame(recent)
        candidates.append(
            {
                "name": r.name,
                "baseline": r.baseline,
                "run": r.run_id,
                "metrics": r.metrics,
                "recent_roc_auc": float(roc_auc_score(y_recent, recent_proba)),
                "gates": [g.to_dict() for g in r.gates],
                "gates_passed": r.gates_passed,
            }
        )
    best = _best(project.spec, [r for r in results if r.bundle is not None])

    stage("register", f"{best.name} as the next version of 'loans', alias champion")
    version = register_candidate(
        project, "loans", best, created_by="quickstart", aliases=("champion",)
    )

    result = QuickstartResult(
        folder,
        [ref_version.ref, recent_version.ref],
        candidates,
        version.ref,
        store=str(project.db.url),
        artifacts=project.artifacts.root,
    )
    project.close()

    stage("serve", "starting the inference server")
    features = best.bundle.encoder.names
    records = recent[features].head(requests).astype(object)
    records = records.where(records.notna(), None).to_dict("records")
    expected = best.bundle.predict_proba(best.bundle.encode_records(records))
    with _server(spec_path, "loans@champion") as base_url:
        path = "/v1/models/loans:predict"
        stage("traffic", f"{requests:,} single-row requests to {base_url}{path}")
        _send(base_url + path, records, expected, result, on_request)
    measured = {
        "p99_latency_ms": result.latency_ms["p99"],
        "error_rate": result.failed_requests / result.requests,
    }
    result.slo_gates = [
        g.to_dict() for g in check_gates(project.spec, measured, "system") if g.value is not None
    ]
    stage("done", "")
    return result


def _best(spec: Any, results: list[Any]) -> Any:
    """The candidate best on the spec's first metric (ties go to the simpler one)."""
    goal = spec.metric_goals()[0]
    sign = 1 if (goal.direction or "max") == "max" else -1
    return max(results, key=lambda r: (sign * r.metrics.get(goal.name, -np.inf), r.baseline))


class _server:
    """Start ``modelyard serve`` on a free port; stop it on exit, whatever happened."""

    def __init__(self, spec_path: Path, ref: str) -> None:
        from modelyard.serve.server import free_port

        self.port = free_port()
        self.command = [
            sys.executable,
            "-m",
            "modelyard",
            "--spec",
            str(spec_path),
            "serve",
            ref,
            "--port",
            str(self.port),
        ]

    def __enter__(self) -> str:
        import httpx

        self.process = subprocess.Popen(
            self.command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                output = self.process.stdout.read() if self.process.stdout else ""
                raise ServingError(f"The inference server exited during start-up:\n{output}")
            try:
                if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                    return url
            except httpx.TransportError:
                time.sleep(0.1)
        self.__exit__()
        raise ServingError("The inference server did not become ready within 60 s.")

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _send(
    url: str,
    records: list[dict[str, Any]],
    expected: np.ndarray,
    result: QuickstartResult,
    on_request: Callable[[int], None] | None,
) -> None:
    import httpx

    latencies, scores = [], []
    with httpx.Client(timeout=10) as client:
        for i, record in enumerate(records):
            started = time.perf_counter()
            response = client.post(url, json={"records": [record]})
            latencies.append(time.perf_counter() - started)
            if response.status_code != 200:
                result.failed_requests += 1
                scores.append(np.nan)
            else:
                scores.append(response.json()["predictions"][0]["probability"])
            if on_request:
                on_request(i + 1)
    ms = np.array(latencies) * 1000
    result.requests = len(records)
    result.latency_ms = {
        "p50": float(np.percentile(ms, 50)),
        "p99": float(np.percentile(ms, 99)),
        "mean": float(ms.mean()),
        "rps": float(len(ms) / (ms.sum() / 1000)),
    }
    result.max_score_difference = float(np.nanmax(np.abs(np.array(scores) - expected)))
