"""Fixtures for the inference server's end-to-end tests: a registered demo model, real servers.

``demo_model`` trains two candidates of the demo project on one split (a
LightGBM model registered as ``loans@1`` with alias ``champion``, and a
logistic regression kept back as the challenger a test may promote) and keeps
fresh applications to send; ``numeric_model`` is an all-numeric model beside
it. ``ServerProcess`` (made by ``start_server``) runs ``modelyard serve`` as a
child process on a free port, exactly as a user starts it; the fixtures that
start one always stop it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import numpy as np
import pandas as pd
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from modelyard.data.datasets import add_dataset
from modelyard.data.demo import DEMO_SPEC, NUMERIC_FEATURES, make_loans
from modelyard.project import Project
from modelyard.registry.versions import ModelVersion, register_candidate, resolve, set_alias
from modelyard.serve.server import free_port
from modelyard.train.bundle import ModelBundle, load_bundle
from modelyard.train.trainer import CandidateResult, train_candidates

#: Small budgets: the suite runs on two cores.
FAST_PARAMS = {"lightgbm": {"num_threads": 1, "num_boost_round": 60}}
READY_SECONDS = 120
STOP_SECONDS = 30


@dataclass
class DemoModel:
    """The demo project with ``loans@champion`` registered, and rows to score."""

    project: Project
    champion: CandidateResult
    challenger: CandidateResult
    reference: pd.DataFrame  # the rows both candidates were trained and tested on
    rows: pd.DataFrame  # later, unseen applications: what the tests send
    _bundles: dict[int, ModelBundle] = field(default_factory=dict)

    @property
    def spec_path(self) -> Path:
        return self.project.spec_path

    @property
    def inputs(self) -> list[str]:
        assert self.champion.bundle is not None
        return self.champion.bundle.input_names

    def records(self, n: int, *, complete: bool = False) -> list[dict[str, Any]]:
        """``n`` JSON-ready records of the model's inputs (``None`` where a value is missing)."""
        frame = self.rows[self.inputs]
        if complete:
            frame = frame.dropna()
        return json_records(frame.head(n))

    def tensors(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """OIP v2 input tensors of ``records``, one per input they carry (FP64 or BYTES)."""
        numbers = set(self.reference.select_dtypes("number").columns)
        return [
            {
                "name": name,
                "datatype": "FP64" if name in numbers else "BYTES",
                "shape": [len(records)],
                "data": [r[name] for r in records if name in r],
            }
            for name in self.inputs
            if any(name in r for r in records)
        ]

    def expected(self, version: int, records: list[dict[str, Any]]) -> np.ndarray:
        """The scores the registered ``version`` gives ``records``, computed in this process."""
        bundle = self._bundles.get(version)
        if bundle is None:
            registered = resolve(self.project, f"loans@{version}")
            bundle = self._bundles[version] = load_bundle(self.project.artifacts, registered.digest)
        return bundle.predict_proba(bundle.encode_records(records))

    def promote_other(self) -> ModelVersion:
        """Register the candidate the champion is not as the next version; point champion at it."""
        current = resolve(self.project, "loans@champion")
        other = self.challenger if current.digest == self.champion.digest else self.champion
        version = register_candidate(self.project, "loans", other)
        return set_alias(self.project, "loans", "champion", version.version)


def json_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A frame's rows as plain JSON values: Python numbers and strings, ``None`` for missing."""
    values = frame.astype(object).where(frame.notna(), None)
    return [
        {k: v.item() if isinstance(v, np.generic) else v for k, v in row.items()}
        for row in values.to_dict("records")
    ]


@pytest.fixture(scope="module")
def demo_model(module_project: Project) -> DemoModel:
    frame = make_loans(3_000, recent_share=0.2, seed=21)
    reference = frame[frame["period"] == "reference"].reset_index(drop=True)
    recent = frame[frame["period"] == "recent"].reset_index(drop=True)
    dataset = add_dataset(module_project, "loans", reference)
    results = train_candidates(
        module_project,
        dataset,
        reference,
        families=["logistic", "lightgbm"],
        params=FAST_PARAMS,
    )
    by_name = {r.name: r for r in results}
    champion, challenger = by_name["lightgbm"], by_name["logistic"]
    register_candidate(module_project, "loans", champion, aliases=("champion",))
    return DemoModel(module_project, champion, challenger, reference, recent)


@dataclass
class NumericModel:
    """``numeric@champion``: LightGBM on the demo's numeric columns, without a cleaning recipe.

    Requests for it are validated and encoded column by column (the signature's
    direct path), and it takes a single 2-D tensor, which the demo model cannot.
    """

    spec_path: Path
    bundle: ModelBundle


@pytest.fixture(scope="module")
def numeric_model(demo_model: DemoModel) -> NumericModel:
    document = yaml.safe_load(DEMO_SPEC)
    document.pop("cleaning")
    document["columns"]["features"] = list(NUMERIC_FEATURES)
    spec_path = demo_model.project.root / "numeric.yaml"
    spec_path.write_text(yaml.safe_dump(document, sort_keys=False))
    project = Project.open(spec_path)
    try:
        dataset = add_dataset(project, "loans", demo_model.reference)
        (result,) = train_candidates(
            project, dataset, demo_model.reference, families=["lightgbm"], params=FAST_PARAMS
        )
        register_candidate(project, "numeric", result, aliases=("champion",))
    finally:
        project.close()
    assert result.bundle is not None and result.bundle.recipe is None
    return NumericModel(spec_path, result.bundle)


class ServerProcess:
    """``modelyard --spec SPEC serve REF --port P [options]`` in a child process."""

    def __init__(self, spec_path: Path, ref: str, *options: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
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
            *options,
        ]
        # the log lives as long as the server: closed by close()
        self._log: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ServerProcess:
        """Launch the process (once) without waiting: several servers can start side by side."""
        if self.process is None:
            env = {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}
            self.process = subprocess.Popen(
                self.command, stdout=self._log, stderr=subprocess.STDOUT, env=env
            )
        return self

    def ready(self) -> ServerProcess:
        """Start the server if needed and wait until it answers ``/v2/health/ready``."""
        process = self.start().process
        assert process is not None
        deadline = time.monotonic() + READY_SECONDS
        while not self._answers():
            if process.poll() is not None:
                raise AssertionError(f"`modelyard serve` exited during start-up:\n{self.log()}")
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"`modelyard serve` not ready in {READY_SECONDS} s:\n{self.log()}"
                )
            time.sleep(0.1)
        return self

    def _answers(self) -> bool:
        try:
            return httpx.get(f"{self.url}/v2/health/ready", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def __enter__(self) -> ServerProcess:
        try:
            return self.ready()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the server and drop its log."""
        self.stop()
        self._log.close()

    def terminate(self) -> None:
        """Send SIGTERM, as a process manager (systemd, Kubernetes) stops a server."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)

    def wait(self, timeout: float = STOP_SECONDS) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout)

    def stop(self) -> int | None:
        """Terminate the server if it still runs (kill it if it will not stop); its exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.terminate()
            try:
                self.process.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def log(self) -> str:
        """Everything the server printed so far."""
        self._log.flush()
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def samples(self, name: str) -> list[tuple[dict[str, str], float]]:
        """Every sample of ``name`` on ``/metrics`` (read by Prometheus' own parser)."""
        text = httpx.get(f"{self.url}/metrics", timeout=10).text
        return [
            (sample.labels, sample.value)
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == name
        ]

    def metric(self, name: str, **labels: str) -> float:
        """The value of the sample of ``name`` carrying ``labels`` (0 if there is none yet)."""
        found = [v for have, v in self.samples(name) if labels.items() <= have.items()]
        assert len(found) <= 1, f"several samples of {name} match {labels}"
        return found[0] if found else 0.0


StartServer = Callable[..., ServerProcess]


@pytest.fixture(scope="module")
def start_server(demo_model: DemoModel) -> StartServer:
    """``start_server(REF, *OPTIONS, spec=PATH)``: a ``ServerProcess`` on the demo project.

    Use it as a context manager, or ``start()`` several, ``ready()`` each and ``close()`` all.
    """

    def start(ref: str, *options: str, spec: Path | None = None) -> ServerProcess:
        return ServerProcess(spec or demo_model.spec_path, ref, *options)

    return start
