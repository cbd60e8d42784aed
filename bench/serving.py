"""Serving throughput and latency: ``modelyard serve`` vs MLServer vs a bare ASGI app, one run.

    .venv/bin/python bench/serving.py [--duration 10] [--quick] [--json out.json] [--keep DIR]

Every server gets the same LightGBM booster (200 trees, 31 leaves, 30 float
features, generated data, imported with ``modelyard models import``) and the
same bytes: one OIP v2 request holding a single FP32 tensor [1, 30], posted to
``/v2/models/bench/infer``; every answer is checked against in-process
``Booster.predict`` (1e-6) before timing. Servers: ``modelyard serve``; the bare
app (``bench/bare_asgi.py``: parse, predict, answer — the physical limit);
MLServer 1.7.1 + mlserver-lightgbm from ``.venv-bench`` in its fastest settings
found here, without and with adaptive batching (``bench/README.md`` says what
was tried). In one run the script measures

1. the in-process limit on core 0: µs per row of ``Booster.predict``, of ONNX
   Runtime on the bundle's ONNX twin and of the bundle path, at batch 1 and
   1,024, and of the bare app's handler;
2. phase "pinned" (servers on core 0, ``wrk`` on core 1, one thread) and phase
   "unpinned" (2 workers where a server has them, ``wrk`` with 2 threads): at
   1, 16 and 64 connections a warm-up, then ``--duration`` seconds per server,
   servers interleaved; req/s, p50, p99 and the server's CPU per request;
3. overload: our server alone under 256 connections for 60 s, a Lua script
   counting statuses and 503s with ``Retry-After``, RSS sampled every second;

then prints a table per phase, the ratios against MLServer's best
configuration for each figure and against the bare app, and the acceptance
checks. Every process runs on loopback with ``OMP_NUM_THREADS=1`` in its own
session, stopped with its process group on exit, Ctrl-C and SIGTERM.
Needs ``wrk`` and ``taskset``; installs MLServer into ``.venv-bench`` if missing
(with uvloop 0.21.0: MLServer 1.7.1 breaks with uvloop >= 0.22).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import math
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "bench"
BENCH_VENV = ROOT / ".venv-bench"
MODEL = "bench"
N_FEATURES = 30
CONCURRENCY = (1, 16, 64)
TOLERANCE = 1e-6
INFER_PATH = f"/v2/models/{MODEL}/infer"
# Variables that would point a child process at another project, store or server.
FOREIGN_ENV = ("MODELYARD_DB_URL", "MODELYARD_ARTIFACTS", "MODELYARD_URL", "MODELYARD_TOKEN")

# ---------------------------------------------------------------------- the model


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


def register(project: Path, model: Model) -> None:
    """A project holding the booster as ``bench@champion``, registered through the CLI."""
    project.mkdir()
    for command in (
        f"init . --name {MODEL} --target y",
        f"models import {MODEL} {model.path} --flavor lightgbm --alias champion",
    ):
        done = modelyard_cli(*command.split(), cwd=project)
        if done.returncode != 0:
            raise SystemExit(f"modelyard {command} failed:\n{done.stdout}{done.stderr}")


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


# ---------------------------------------------------------------------- processes


class Processes:
    """Processes started here, each in its own session; ``stop_all`` ends their groups."""

    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(
        self, name: str, cmd: list[str], env: dict[str, str], cwd: Path
    ) -> subprocess.Popen[bytes]:
        with (self.logdir / f"{name}.log").open("ab") as log:
            proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True
            )
        self.procs.append(proc)
        return proc

    def log_tail(self, name: str) -> str:
        path = self.logdir / f"{name}.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def stop_all(self) -> None:
        for proc in self.procs:
            _signal_group(proc, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait()
            _signal_group(proc, signal.SIGKILL)  # workers the leader left behind
        self.procs.clear()


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)  # the session we created for it: the pgid is its pid


def group_stats(pgid: int) -> tuple[int, float]:
    """RSS (KiB) and CPU seconds (user + system) of the live processes in a process group."""
    rss_kib, ticks = 0, 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) != pgid:  # state, ppid, pgrp, …
                continue
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
            status = (stat.parent / "status").read_text()
        except (OSError, IndexError, ValueError):
            continue  # the process ended while we read it
        found = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
        rss_kib += int(found.group(1)) if found else 0
    return rss_kib, ticks / os.sysconf("SC_CLK_TCK")


def pin(core: int | None) -> list[str]:
    return ["taskset", "-c", str(core)] if core is not None else []


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http(url: str, body: bytes | None = None, timeout: float = 5) -> Any:
    headers = {"Content-Type": "application/json"}
    request = urllib.request.Request(url, data=body, headers=headers)
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        return json.loads(answer.read())


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited during start-up (code {proc.returncode})")
        with (
            contextlib.suppress(urllib.error.URLError, ConnectionError, OSError),
            urllib.request.urlopen(url, timeout=1) as answer,
        ):
            if answer.status == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"not ready within {timeout:.0f} s")


# ---------------------------------------------------------------------- servers


@dataclass(frozen=True)
class Phase:
    """Where servers and load generator run, and how many workers a server gets."""

    key: str
    title: str
    server_core: int | None
    wrk_core: int | None
    wrk_threads: int
    workers: int


PINNED = Phase("pinned", "server on core 0, wrk on core 1 (1 thread)", 0, 1, 1, 1)
UNPINNED = Phase("unpinned", "no pinning; 2 workers where a server has them", None, None, 2, 2)


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
    project: Path
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


@dataclass
class Target:
    """A running server that answered correctly; its process group gives RSS and CPU."""

    name: str
    url: str
    proc: subprocess.Popen[bytes]
    note: str


def ours(setup: Setup, phase: Phase) -> Server:
    port = free_port()
    serve = f"serve {MODEL}@champion --host 127.0.0.1 --port {port} --workers {phase.workers}"
    cmd = [*pin(phase.server_core), sys.executable, "-m", "modelyard", *serve.split()]
    return Server("modelyard", cmd, setup.project, port, "/v2/health/ready")


def bare(setup: Setup, phase: Phase) -> Server:
    port = free_port()
    options = (
        f"--app-dir {BENCH_DIR} --host 127.0.0.1 --port {port} --workers {phase.workers} "
        "--loop uvloop --http httptools --lifespan off --no-access-log --log-level warning"
    )
    cmd = [*pin(phase.server_core), sys.executable, "-m", "uvicorn", "bare_asgi:app"]
    env = {**child_env(), "BARE_ASGI_MODEL": str(setup.model.path)}
    return Server("bare", cmd + options.split(), setup.work, port, "/", env)


def mlserver(setup: Setup, phase: Phase, config: MLServerConfig) -> Server:
    """An MLServer folder (settings.json, bench/model-settings.json, the booster)."""
    folder = setup.work / f"{config.name}-{phase.key}"
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
    cmd = [*pin(phase.server_core), str(BENCH_VENV / "bin" / "mlserver"), "start", "."]
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
        note = server.note or (_runtime_note(base) if server.name == "modelyard" else "")
        try:
            diff = answer_diff(base + INFER_PATH, setup)
        except RuntimeError as exc:
            failed[server.name] = f"wrong or failed answer, not timed: {exc}"
            continue
        note += f"{'; ' if note else ''}answer - Booster.predict: {diff:.1e}"
        targets.append(Target(server.name, base + INFER_PATH, proc, note))
    for name, problem in failed.items():
        print(f"  {name}: {problem}", flush=True)
    return targets, failed


def _runtime_note(base: str) -> str:
    """What our server says it runs: ``platform`` and ``runtime`` of the model metadata."""
    try:
        meta = http(f"{base}/v2/models/{MODEL}")
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
        got = answer_probability(http(url, setup.body))
    except urllib.error.HTTPError as exc:
        raise RuntimeError(f"HTTP {exc.code}: {exc.read()[:300].decode(errors='replace')}") from exc
    except (urllib.error.URLError, OSError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise RuntimeError(f"no usable answer ({type(exc).__name__}: {exc})") from exc
    diff = abs(got - setup.model.expected)
    if not diff <= TOLERANCE:
        expected = setup.model.expected
        raise RuntimeError(f"answered {got!r}; in-process Booster.predict gives {expected!r}")
    return diff


# ---------------------------------------------------------------------- wrk


@dataclass
class Cell:
    """One wrk run against one server at one concurrency."""

    server: str
    connections: int
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: str
    cpu_ms_per_request: float = float("nan")


BODY_LUA = """wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [=[{body}]=]
"""
# Counts responses by status, and 503s carrying Retry-After; done() sums over threads.
STATUS_LUA = r"""
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) counts = {}; retry_after_503 = 0 end
function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
  if status == 503 then
    for name, _ in pairs(headers) do
      if string.lower(name) == "retry-after" then retry_after_503 = retry_after_503 + 1 end
    end
  end
end
function done(summary, latency, requests)
  local total, retry = {}, 0
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("counts")) do total[status] = (total[status] or 0) + n end
    retry = retry + thread:get("retry_after_503")
  end
  for status, n in pairs(total) do io.write(string.format("status %d %d\n", status, n)) end
  io.write(string.format("retry-after-503 %d\n", retry))
end
"""


def write_lua(work: Path, body: bytes, count_statuses: bool = False) -> Path:
    path = work / ("overload.lua" if count_statuses else "request.lua")
    path.write_text(BODY_LUA.format(body=body.decode()) + (STATUS_LUA if count_statuses else ""))
    return path


def wrk(url: str, lua: Path, connections: int, seconds: int, phase: Phase) -> str:
    """wrk's report (HTTP/1.1 keep-alive, latency percentiles)."""
    threads = min(phase.wrk_threads, connections)
    options = f"-t{threads} -c{connections} -d{seconds}s --timeout 5s --latency -s {lua} {url}"
    cmd = [*pin(phase.wrk_core), "wrk", *options.split()]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=seconds + 60)
    if done.returncode != 0 or done.stderr.strip() or "Requests/sec" not in done.stdout:
        raise RuntimeError(f"wrk failed: {done.stdout[-800:]}{done.stderr[-800:]}")
    return done.stdout


def measure(target: Target, lua: Path, connections: int, seconds: int, phase: Phase) -> Cell:
    cpu_before = group_stats(target.proc.pid)[1]
    cell = parse_wrk(wrk(target.url, lua, connections, seconds, phase), target.name)
    requests = cell.rps * seconds
    if requests:
        cell.cpu_ms_per_request = (group_stats(target.proc.pid)[1] - cpu_before) * 1e3 / requests
    return cell


def parse_wrk(report: str, server: str) -> Cell:
    connections = re.search(r"(\d+) threads and (\d+) connections", report)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", report)
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", report, re.M))
    if connections is None or rps is None or set(latency) != {"50", "99"}:
        raise RuntimeError(f"cannot read wrk's report:\n{report}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", report)
    errors = re.search(r"Socket errors:\s*(.*)", report)
    return Cell(
        server,
        int(connections.group(2)),
        float(rps.group(1)),
        to_ms(latency["50"]),
        to_ms(latency["99"]),
        int(non_2xx.group(1)) if non_2xx else 0,
        errors.group(1).strip() if errors else "",
    )


def to_ms(value: str) -> float:
    """wrk's duration ('812.00us', '1.20ms', '2.01s', '1.00m') in milliseconds."""
    found = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", value)
    if found is None:
        raise RuntimeError(f"cannot read wrk's duration {value!r}")
    scale = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4, "h": 3.6e6}[found.group(2)]
    return float(found.group(1)) * scale


# ---------------------------------------------------------------------- phases


@dataclass
class PhaseResult:
    phase: Phase
    servers: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    cells: list[Cell] = field(default_factory=list)

    def get(self, server: str, connections: int) -> Cell | None:
        found = (c for c in self.cells if c.server == server and c.connections == connections)
        return next(found, None)


def run_phase(
    setup: Setup, phase: Phase, args: argparse.Namespace, procs: Processes
) -> PhaseResult:
    print(f"\nphase {phase.key}: {phase.title}", flush=True)
    servers = [ours(setup, phase)] if "modelyard" in args.servers else []
    servers += [bare(setup, phase)] if "bare" in args.servers else []
    if "mlserver" in args.servers:
        servers += [mlserver(setup, phase, config) for config in MLSERVER_CONFIGS[phase.key]]
    targets, failed = launch(procs, servers, setup, phase.key)
    result = PhaseResult(phase, {t.name: t.note for t in targets}, failed)
    lua = write_lua(setup.work, setup.body)
    for connections in CONCURRENCY:
        for target in targets:  # interleaved, so a slow drift of the machine hits all alike
            wrk(target.url, lua, connections, args.warmup, phase)
            result.cells.append(measure(target, lua, connections, args.duration, phase))
            print(f"  {cell_line(result.cells[-1])}", flush=True)
    procs.stop_all()
    return result


def cell_line(cell: Cell) -> str:
    errors = f"  non-2xx {cell.non_2xx}" if cell.non_2xx else ""
    errors += f"  socket errors: {cell.socket_errors}" if cell.socket_errors else ""
    return (
        f"{cell.server:<22}{cell.connections:>6}{cell.rps:>10,.0f}{cell.p50_ms:>9.2f}"
        f"{cell.p99_ms:>9.2f}{cell.cpu_ms_per_request:>12.3f}{errors}"
    )


# ---------------------------------------------------------------------- overload


@dataclass
class Overload:
    cell: Cell
    seconds: int
    statuses: dict[int, int]
    retry_after_503: int
    rss_mib: list[float]

    @property
    def bad_5xx(self) -> int:
        return sum(n for s, n in self.statuses.items() if s >= 500 and s != 503)


def run_overload(setup: Setup, args: argparse.Namespace, procs: Processes) -> Overload | None:
    """Our server alone (as in the pinned phase) under many connections; RSS every second."""
    conns, seconds = args.overload_connections, args.overload_seconds
    print(f"\noverload: modelyard, {conns} connections, {seconds} s", flush=True)
    targets, _ = launch(procs, [ours(setup, PINNED)], setup, "overload")
    if not targets:
        return None
    pgid, samples, stop = targets[0].proc.pid, [], threading.Event()

    def sample() -> None:
        while not stop.is_set():
            samples.append(group_stats(pgid)[0] / 1024)
            stop.wait(1.0)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    lua = write_lua(setup.work, setup.body, count_statuses=True)
    try:
        report = wrk(targets[0].url, lua, conns, seconds, PINNED)
    finally:
        stop.set()
        sampler.join()
        procs.stop_all()
    statuses = {int(s): int(n) for s, n in re.findall(r"^status (\d+) (\d+)$", report, re.M)}
    retry = re.search(r"^retry-after-503 (\d+)$", report, re.M)
    retry_after = int(retry.group(1)) if retry else 0
    return Overload(parse_wrk(report, "modelyard"), seconds, statuses, retry_after, samples)


# ---------------------------------------------------------------------- report


@dataclass
class Ratios:
    """Ours against MLServer's best configuration for each figure, and against the bare app."""

    connections: int
    mlserver_best: dict[str, str]
    rps_vs_mlserver: float
    p50_mlserver_over_ours: float
    p99_mlserver_over_ours: float
    cpu_mlserver_over_ours: float
    rps_vs_bare: float


def ratios(result: PhaseResult) -> list[Ratios]:
    rows, nan = [], float("nan")
    for c in CONCURRENCY:
        ours_cell, bare_cell = result.get("modelyard", c), result.get("bare", c)
        peers = [x for x in result.cells if x.connections == c and x.server.startswith("mlserver")]
        if ours_cell is None:
            continue
        best = {
            "rps": max(peers, key=lambda x: x.rps, default=None),
            "p50": min(peers, key=lambda x: x.p50_ms, default=None),
            "p99": min(peers, key=lambda x: x.p99_ms, default=None),
            "cpu": min(peers, key=lambda x: x.cpu_ms_per_request, default=None),
        }
        rps, p50, p99, cpu = best["rps"], best["p50"], best["p99"], best["cpu"]
        rows.append(
            Ratios(
                c,
                {k: v.server for k, v in best.items() if v},
                ours_cell.rps / rps.rps if rps else nan,
                p50.p50_ms / ours_cell.p50_ms if p50 else nan,
                p99.p99_ms / ours_cell.p99_ms if p99 else nan,
                cpu.cpu_ms_per_request / ours_cell.cpu_ms_per_request if cpu else nan,
                ours_cell.rps / bare_cell.rps if bare_cell else nan,
            )
        )
    return rows


def acceptance(rows: list[Ratios]) -> dict[str, bool]:
    """The issue's acceptance criteria, for the servers this run measured."""
    by_c = {r.connections: r for r in rows}
    checks: dict[str, tuple[float, bool]] = {}  # label: (ratio, passed)
    if r64 := by_c.get(64):
        rps, p99 = r64.rps_vs_mlserver, r64.p99_mlserver_over_ours
        checks["64 conns: req/s >= 4x MLServer's best"] = (rps, rps >= 4)
        checks["64 conns: p99 below MLServer's best"] = (p99, p99 > 1)
    if r1 := by_c.get(1):
        p50 = r1.p50_mlserver_over_ours
        checks["1 conn: p50 <= half of MLServer's best"] = (p50, p50 >= 2)
    for r in rows:
        label = f"{r.connections} conns: req/s >= 75% of the bare app"
        checks[label] = (r.rps_vs_bare, r.rps_vs_bare >= 0.75)
    return {label: passed for label, (ratio, passed) in checks.items() if not math.isnan(ratio)}


def print_phase(result: PhaseResult, args: argparse.Namespace) -> list[Ratios]:
    phase = result.phase
    print(f"\n== phase {phase.key}: {phase.title}; wrk {phase.wrk_threads} thread(s), ", end="")
    print(f"{args.duration} s per cell after a {args.warmup} s warm-up ==")
    for name, note in result.servers.items():
        print(f"  {name}: {note}" if note else f"  {name}")
    for name, problem in result.failed.items():
        print(f"  {name}: NOT MEASURED, {problem.splitlines()[0]}")
    print(f"{'server':<22}{'conns':>6}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'CPU ms/req':>12}")
    for c in CONCURRENCY:
        for cell in (x for x in result.cells if x.connections == c):
            print(cell_line(cell))
    rows = ratios(result)
    print("ratios, > 1 is better for us (MLServer: its best configuration for each figure):")
    for r in rows:
        print(
            f"  {r.connections:>2} conns: req/s x{r.rps_vs_mlserver:.2f}, p50 "
            f"x{r.p50_mlserver_over_ours:.2f}, p99 x{r.p99_mlserver_over_ours:.2f}, CPU/req "
            f"x{r.cpu_mlserver_over_ours:.2f}; "
            f"ours/bare {r.rps_vs_bare:.0%}"
        )
    for r in rows:
        best = ", ".join(f"{k} {v}" for k, v in r.mlserver_best.items())
        print(f"  MLServer's best at {r.connections} conns: {best}")
    for label, passed in acceptance(rows).items():
        print(f"  [{'pass' if passed else 'FAIL'}] {label}")
    return rows


def print_in_process(limits: dict[str, dict[str, float]]) -> None:
    print("\nin-process limit, one thread, core 0 (median µs per row):")
    for name, by_batch in limits.items():
        figures = "  ".join(f"{k}: {v:7.2f}" for k, v in by_batch.items())
        print(f"  {name:<42}{figures}")


def print_overload(o: Overload) -> None:
    statuses = ", ".join(f"{s}: {n:,}" for s, n in sorted(o.statuses.items()))
    n503 = o.statuses.get(503, 0)
    print(f"\n== overload: modelyard pinned, {o.cell.connections} connections, {o.seconds} s ==")
    print(f"  {sum(o.statuses.values()):,} responses ({statuses})")
    print(f"  {o.cell.rps:,.0f} req/s, p50 {o.cell.p50_ms:.1f} ms, p99 {o.cell.p99_ms:.1f} ms")
    print(f"  socket errors: {o.cell.socket_errors or 'none'}")
    print(f"  [{'pass' if o.bad_5xx == 0 else 'FAIL'}] no 5xx but 503 ({o.bad_5xx} others)")
    mark = "pass" if o.retry_after_503 == n503 else "FAIL"
    print(f"  [{mark}] 503s with Retry-After: {o.retry_after_503:,} of {n503:,}")
    if rss := o.rss_mib:
        print(f"  RSS MiB: start {rss[0]:.0f}, max {max(rss):.0f}, end {rss[-1]:.0f}", end="")
        print(f" ({len(rss)} samples, one a second)")


def figures(
    limits: dict[str, dict[str, float]], results: list[PhaseResult], overload: Overload | None
) -> dict[str, Any]:
    phases = {}
    for r in results:
        rows = ratios(r)
        phases[r.phase.key] = {
            "setup": asdict(r.phase),
            "servers": r.servers,
            "failed": r.failed,
            "cells": [asdict(c) for c in r.cells],
            "ratios": [asdict(x) for x in rows],
            "acceptance": acceptance(rows),
        }
    return {
        "in_process_us_per_row": limits,
        "phases": phases,
        "overload": {**asdict(overload), "bad_5xx": overload.bad_5xx} if overload else None,
    }


# ---------------------------------------------------------------------- main


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    ap.add_argument("--duration", type=int, default=10, help="seconds per cell (default 10)")
    ap.add_argument("--warmup", type=int, default=1, help="warm-up seconds per cell (default 1)")
    ap.add_argument("--quick", action="store_true", help="2 s cells, 5 s overload: a smoke run")
    ap.add_argument("--phases", default="pinned,unpinned", help="default: pinned,unpinned")
    ap.add_argument("--servers", default="modelyard,bare,mlserver", help="default: all three")
    ap.add_argument(
        "--mlserver-batch",
        default="16:0.0005",
        metavar="ROWS:SECONDS",
        help="MLServer's max_batch_size:max_batch_time when batching (default 16:0.0005)",
    )
    ap.add_argument("--overload", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--overload-seconds", type=int, default=60)
    ap.add_argument("--overload-connections", type=int, default=256)
    ap.add_argument("--json", type=Path, help="write every figure to this file")
    ap.add_argument("--keep", type=Path, help="work in this folder (logs, model) and keep it")
    args = ap.parse_args()
    if args.quick:
        args.duration, args.warmup, args.overload_seconds = 2, 1, 5
    args.servers = set(args.servers.split(","))
    rows, seconds = args.mlserver_batch.split(":")
    args.mlserver_batch = (int(rows), float(seconds))
    return args


def main() -> int:
    args = parse_args()
    missing = [tool for tool in ("wrk", "taskset") if not shutil.which(tool)]
    if missing or (os.cpu_count() or 0) < 2:
        print(f"needs 2 cores, wrk and taskset (missing: {missing or 'cores'})", file=sys.stderr)
        return 2

    def on_term(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    work = args.keep or Path(tempfile.mkdtemp(prefix="modelyard-bench-serving-"))
    work.mkdir(parents=True, exist_ok=True)
    procs = Processes(work)
    try:
        return run(args, work, procs)
    except KeyboardInterrupt:
        print("\ninterrupted; stopping servers", file=sys.stderr)
        return 130
    finally:
        procs.stop_all()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def run(args: argparse.Namespace, work: Path, procs: Processes) -> int:
    started, load_before = time.monotonic(), os.getloadavg()[1]
    model = build_model(work)
    register(work / "project", model)
    body = request_body(model.row)
    print(f"model: LightGBM binary, 200 trees, 31 leaves, {N_FEATURES} features, imported as")
    print(f"  {MODEL}@champion with `modelyard models import`; request: {len(body)} bytes")
    if "mlserver" in args.servers and (problem := ensure_mlserver()):
        print(f"MLServer not measured: {problem}")
        args.servers.discard("mlserver")
    setup = Setup(work, work / "project", model, body, args.mlserver_batch)
    limits = in_process_limit(model, setup.project / "modelyard.yaml", body)
    print_in_process(limits)
    phases = {p.key: p for p in (PINNED, UNPINNED)}
    results = [run_phase(setup, phases[k], args, procs) for k in args.phases.split(",") if k]
    overload = run_overload(setup, args, procs) if args.overload else None

    print_in_process(limits)
    for result in results:
        print_phase(result, args)
    if overload:
        print_overload(overload)
    load = (load_before, os.getloadavg()[1])
    print(f"\ntotal {time.monotonic() - started:.0f} s; 5-minute load average {load[0]:.1f} before")
    print(f"the run, {load[1]:.1f} at its end (its own included; 2 cores: above ~1, expect noise)")
    if args.json:
        every = {**figures(limits, results, overload), "load_average_5min": load}
        args.json.write_text(json.dumps(every, indent=2))
    return 1 if any(r.failed for r in results) or (args.overload and not overload) else 0


if __name__ == "__main__":
    sys.exit(main())
