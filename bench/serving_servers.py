"""The servers ``bench/serving.py`` compares: how each starts, and the answer check before timing.

- ``ours``: ``modelyard serve bench@champion`` from the project with the
  prediction log on (``modelyard``) or off (``modelyard-nolog``);
- ``bare``: ``bench/bare_asgi.py`` under uvicorn, the physical limit;
- ``mlserver``: MLServer 1.7.1 + mlserver-lightgbm from ``.venv-bench``, in
  the configurations of ``MLSERVER_CONFIGS``.

``launch`` starts them all at once and keeps those whose answer matches
in-process ``Booster.predict`` to 1e-6.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.error
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from harness import Placement, Processes, free_port, http_json, pin, wait_ready
from serving_model import BENCH_DIR, MODEL, ROOT, Model, child_env

BENCH_VENV = ROOT / ".venv-bench"
TOLERANCE = 1e-6
INFER_PATH = f"/v2/models/{MODEL}/infer"
OURS = "modelyard"  # the prediction log on: the spec's default
OURS_NOLOG = "modelyard-nolog"

PINNED = Placement("pinned", "server on core 0, wrk on core 1 (1 thread)", 0, 1, 1, 1)
UNPINNED = Placement("unpinned", "no pinning; 2 workers where a server has them", None, None, 2, 2)


@dataclass(frozen=True)
class MLServerConfig:
    name: str
    parallel_workers: int = 0
    batching: bool = False

    def describe(self, batch: tuple[int, float]) -> str:
        rows, seconds = batch
        batching = (
            f"batching {rows} rows / {seconds * 1e3:g} ms" if self.batching else "no batching"
        )
        return f"parallel_workers {self.parallel_workers}, {batching}"


MLSERVER_CONFIGS = {
    PINNED.key: (MLServerConfig("mlserver"), MLServerConfig("mlserver-batch", batching=True)),
    UNPINNED.key: (MLServerConfig("mlserver"), MLServerConfig("mlserver-pool2-batch", 2, True)),
}


@dataclass
class Setup:
    work: Path
    projects: dict[bool, Path]  # prediction log on (True) / off (False): its project folder
    model: Model
    body: bytes
    batch: tuple[int, float]  # MLServer's max_batch_size, max_batch_time (s)


@dataclass
class Server:
    """How to start one server: command, folder, port and readiness path."""

    name: str
    cmd: list[str]
    cwd: Path
    port: int
    ready_path: str
    env: dict[str, str] = field(default_factory=child_env)
    note: str = ""
    logging: bool | None = None  # ours: whether its spec turns the prediction log on
    workers: int = 1


@dataclass
class Target:
    """A running server that answered correctly; its process group gives RSS and CPU."""

    server: Server
    url: str
    proc: subprocess.Popen[bytes]
    note: str

    @property
    def name(self) -> str:
        return self.server.name

    @property
    def base(self) -> str:
        return self.url.removesuffix(INFER_PATH)


def ours(setup: Setup, where: Placement, *, logging: bool = True) -> Server:
    port = free_port()
    serve = f"serve {MODEL}@champion --host 127.0.0.1 --port {port} --workers {where.workers}"
    cmd = [*pin(where.server_core), sys.executable, "-m", "modelyard", *serve.split()]
    name = OURS if logging else OURS_NOLOG
    project = setup.projects[logging]
    note = f"prediction log {'on' if logging else 'off'}"
    ready = "/v2/health/ready"
    return Server(
        name, cmd, project, port, ready, note=note, logging=logging, workers=where.workers
    )


def bare(setup: Setup, where: Placement) -> Server:
    port = free_port()
    options = (
        f"--app-dir {BENCH_DIR} --host 127.0.0.1 --port {port} --workers {where.workers} "
        "--loop uvloop --http httptools --lifespan off --no-access-log --log-level warning"
    )
    cmd = [*pin(where.server_core), sys.executable, "-m", "uvicorn", "bare_asgi:app"]
    env = {**child_env(), "BARE_ASGI_MODEL": str(setup.model.path)}
    return Server("bare", cmd + options.split(), setup.work, port, "/", env)


def mlserver(setup: Setup, where: Placement, config: MLServerConfig) -> Server:
    """An MLServer folder (settings.json, bench/model-settings.json, the booster)."""
    folder = setup.work / f"{config.name}-{where.key}"
    (folder / MODEL).mkdir(parents=True)
    shutil.copy(setup.model.path, folder / MODEL / "model.txt")
    rows, seconds = setup.batch if config.batching else (0, 0.0)
    model_settings = {
        "name": MODEL,
        "implementation": "mlserver_lightgbm.LightGBMModel",
        "parameters": {"uri": "./model.txt", "version": "1"},
        "max_batch_size": rows,
        "max_batch_time": seconds,
    }
    (folder / MODEL / "model-settings.json").write_text(json.dumps(model_settings))
    port = free_port()
    settings = {
        "host": "127.0.0.1",
        "http_port": port,
        "grpc_port": free_port(),
        "metrics_port": free_port(),
        "metrics_endpoint": None,  # no Prometheus middleware or metrics server
        "gzip_enabled": False,
        "debug": False,
        "parallel_workers": config.parallel_workers,
    }
    (folder / "settings.json").write_text(json.dumps(settings))
    cmd = [*pin(where.server_core), str(BENCH_VENV / "bin" / "mlserver"), "start", "."]
    ready = f"/v2/models/{MODEL}/ready"
    return Server(config.name, cmd, folder, port, ready, note=config.describe(setup.batch))


def launch(
    procs: Processes, servers: list[Server], setup: Setup, tag: str
) -> tuple[list[Target], dict[str, str]]:
    """Start every server at once, then keep those that come up and answer correctly."""
    started = [(s, procs.start(f"{s.name}-{tag}", s.cmd, s.env, s.cwd)) for s in servers]
    targets, failed = [], {}
    for server, proc in started:
        base = f"http://127.0.0.1:{server.port}"
        try:
            wait_ready(base + server.ready_path, proc)
        except RuntimeError as exc:
            failed[server.name] = f"did not start: {exc}\n{procs.log_tail(f'{server.name}-{tag}')}"
            continue
        runtime = _runtime_note(base) if server.logging is not None else ""
        note = "; ".join(n for n in (server.note, runtime) if n)
        try:
            diff = answer_diff(base + INFER_PATH, setup)
        except RuntimeError as exc:
            failed[server.name] = f"wrong or failed answer, not timed: {exc}"
            continue
        note += f"{'; ' if note else ''}answer - Booster.predict: {diff:.1e}"
        targets.append(Target(server, base + INFER_PATH, proc, note))
    for name, problem in failed.items():
        print(f"  {name}: {problem}", flush=True)
    return targets, failed


def _runtime_note(base: str) -> str:
    """What our server says it runs: ``platform`` and ``runtime`` of the model metadata."""
    try:
        meta = http_json(f"{base}/v2/models/{MODEL}")
    except (urllib.error.URLError, OSError, ValueError):
        return "model metadata unavailable"
    found = {**meta.get("parameters", {}), **meta}
    return ", ".join(f"{k} {found[k]}" for k in ("platform", "runtime") if k in found)


def ensure_mlserver() -> str | None:
    """None when MLServer is usable in .venv-bench, else why not (after trying to install)."""
    python = BENCH_VENV / "bin" / "python"
    check = "import mlserver_lightgbm, uvloop; assert uvloop.__version__ == '0.21.0'"
    probe = [str(python), "-c", check]
    if python.exists() and subprocess.run(probe, check=False, capture_output=True).returncode == 0:
        return None
    print("installing MLServer into .venv-bench (one time) ...", flush=True)
    steps = [] if python.exists() else [["python3", "-m", "venv", str(BENCH_VENV)]]
    packages = "mlserver==1.7.1 mlserver-lightgbm==1.7.1 uvloop==0.21.0 httptools"
    steps.append([str(python), "-m", "pip", "install", "-q", *packages.split()])
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            return f"{' '.join(step)} failed: {done.stderr[-1500:]}"
    if subprocess.run(probe, check=False, capture_output=True).returncode != 0:
        return "MLServer was installed in .venv-bench but does not import"
    return None


def answer_probability(answer: Any) -> float:
    """P(positive) from a v2 answer: the output named 'probability', else the first."""
    outputs = answer["outputs"]
    chosen = next((o for o in outputs if o.get("name") == "probability"), outputs[0])
    data = np.asarray(chosen["data"], dtype=np.float64).reshape(-1)
    return float(data[-1] if len(data) == 2 else data[0])  # (1, 2) class probabilities → [1]


def answer_diff(url: str, setup: Setup) -> float:
    """How far the server's answer is from in-process ``Booster.predict`` (at most 1e-6)."""
    try:
        got = answer_probability(http_json(url, setup.body))
    except urllib.error.HTTPError as exc:
        raise RuntimeError(f"HTTP {exc.code}: {exc.read()[:300].decode(errors='replace')}") from exc
    except (urllib.error.URLError, OSError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise RuntimeError(f"no usable answer ({type(exc).__name__}: {exc})") from exc
    diff = abs(got - setup.model.expected)
    if not diff <= TOLERANCE:
        expected = setup.model.expected
        raise RuntimeError(f"answered {got!r}; in-process Booster.predict gives {expected!r}")
    return diff
