"""Serving throughput and latency: ``modelyard serve`` vs MLServer, same booster, one run.

    .venv/bin/python bench/serving.py [--duration 10] [--keep DIR]

What it does, in order:

1. ``modelyard quickstart --rows 20000 --requests 1`` in a temp dir: a demo
   project whose ``loans@champion`` is a LightGBM model.
2. Exports that champion's LightGBM text model from the artifact store
   (manifest blob → ``model.digest`` → ``model.txt``) and writes an MLServer
   model folder (``mlserver-lightgbm`` runtime, ``model-settings.json``) and a
   server ``settings.json`` (free ports, ``parallel_workers: 0`` — inference in
   the HTTP process, MLServer's fastest configuration measured on this
   machine, see ``../shared/SERVING_NOTES.md`` — and ``debug: false``).
3. Starts ``modelyard serve loans@champion`` (1 worker) and ``mlserver start``
   from ``.venv-bench``, each pinned to core 0 with ``taskset -c 0`` (when
   available) and ``OMP_NUM_THREADS=1``, loopback only.
4. Checks that both servers return the same probability for the request row.
5. Drives each with ``wrk`` pinned to core 1 (one thread, HTTP/1.1
   keep-alive): a 3 s warm-up, then 10 s at 1 and 10 s at 16 connections,
   interleaving the two servers. Prints req/s, p50 and p99 and ours/peer.
6. Stops every process it started (its own process group), also on Ctrl-C.

The two requests differ, as the two servers' contracts do:
- ours: ``POST /predict`` with the raw JSON record (categorical strings,
  validated and encoded by the model's saved recipe and encoder per request);
- MLServer: ``POST /v2/models/loans/infer`` with one FP32 tensor [1, n_features]
  holding the row *already encoded* by our encoder (MLServer's LightGBM runtime
  takes only the numeric matrix), so MLServer does less work per request.

Requirements: ``wrk`` (``apt-get install -y wrk``) and, in ``.venv-bench``,
``mlserver mlserver-lightgbm uvloop==0.21.0 httptools`` (MLServer 1.7.1 breaks
with uvloop >= 0.22). ``--ours-only`` skips the peer.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH_VENV = ROOT / ".venv-bench"
MODEL_NAME = "loans"

LUA = """wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = {body}
"""


def free_port() -> int:
    from modelyard.serve.server import free_port as _free

    return _free()


def pin(core: int) -> list[str]:
    return (
        ["taskset", "-c", str(core)]
        if shutil.which("taskset") and os.cpu_count() and os.cpu_count() > core
        else []
    )


class Servers:
    """Processes started here, each in its own session; all stopped by ``stop_all``."""

    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(
        self, name: str, cmd: list[str], env: dict[str, str], cwd: Path | None = None
    ) -> subprocess.Popen[bytes]:
        log = (self.logdir / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True
        )
        self.procs.append((name, proc))
        return proc

    def log(self, name: str) -> str:
        path = self.logdir / f"{name}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def stop_all(self) -> None:
        for _, proc in reversed(self.procs):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)  # the session we created for it
        for _, proc in reversed(self.procs):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited during start-up (code {proc.returncode})")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"not ready within {timeout:.0f} s")


def post(url: str, body: bytes) -> Any:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def run_wrk(url: str, lua: Path, connections: int, duration: int) -> dict[str, float]:
    cmd = [
        *pin(1),
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{duration}s",
        "--latency",
        "-s",
        str(lua),
        url,
    ]
    out = subprocess.run(
        cmd, check=False, capture_output=True, text=True, timeout=duration + 30
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = {p: _ms(v) for p, v in re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M)}
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    if bad or errors:
        print(f"    warning: {bad.group(0) if bad else ''} {errors.group(0) if errors else ''}")
    return {
        "rps": rps,
        "p50": lat["50"],
        "p99": lat["99"],
        "non2xx": int(bad.group(1)) if bad else 0,
    }


def _ms(value: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value)
    num, unit = float(m.group(1)), m.group(2)
    return num * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[unit]


def ensure_peer() -> str | None:
    """None when MLServer is usable in .venv-bench, else why not (after trying to install)."""
    pip = BENCH_VENV / "bin" / "pip"
    if not pip.exists():
        return f"{BENCH_VENV} does not exist (python3 -m venv .venv-bench)"
    probe = [
        str(BENCH_VENV / "bin" / "python"),
        "-c",
        "import mlserver, mlserver_lightgbm, uvloop; assert uvloop.__version__ == '0.21.0'",
    ]
    if subprocess.run(probe, check=False, capture_output=True).returncode != 0:
        print("installing mlserver mlserver-lightgbm uvloop==0.21.0 httptools into .venv-bench ...")
        done = subprocess.run(
            [
                str(pip),
                "install",
                "-q",
                "mlserver",
                "mlserver-lightgbm",
                "uvloop==0.21.0",
                "httptools",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            return "pip install failed: " + done.stderr[-1500:]
        if subprocess.run(probe, check=False, capture_output=True).returncode != 0:
            return "mlserver installed but does not import"
    return None


def export_model(spec: Path, model_dir: Path) -> dict[str, Any]:
    """Write the champion's LightGBM text model and MLServer settings; return a request row."""
    import numpy as np

    from modelyard.data.demo import make_loans
    from modelyard.project import Project
    from modelyard.registry.versions import resolve
    from modelyard.train.bundle import load_bundle

    project = Project.open(spec)
    try:
        version = resolve(project, f"{MODEL_NAME}@champion")
        manifest = json.loads(project.artifacts.get_bytes(version.digest))
        if manifest["flavor"] != "lightgbm":
            raise SystemExit(f"champion is a {manifest['flavor']} model, not LightGBM")
        (model_dir / "model.txt").write_bytes(
            project.artifacts.get_bytes(manifest["model"]["digest"])
        )
        bundle = load_bundle(project.artifacts, version.digest)
    finally:
        project.close()

    frame = make_loans(2000)
    frame = frame[frame["period"] == "recent"][bundle.input_names].astype(object)
    records = frame.where(frame.notna(), None).to_dict("records")
    for record in records:  # a complete row whose encoding is JSON-safe (no NaN)
        if all(v is not None for v in record.values()):
            encoded = bundle.encode_records([record])
            if np.isfinite(encoded).all():
                break
    (model_dir / "model-settings.json").write_text(
        json.dumps(
            {
                "name": MODEL_NAME,
                "implementation": "mlserver_lightgbm.LightGBMModel",
                "parameters": {"uri": "./model.txt", "version": str(version.version)},
            }
        )
    )
    return {
        "record": {k: (v.item() if hasattr(v, "item") else v) for k, v in record.items()},
        "encoded": encoded[0].astype(np.float32).tolist(),
        "expected": float(bundle.predict_proba(encoded)[0]),
        "version": version.version,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=int, default=10, help="seconds per wrk run (default 10)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--ours-only", action="store_true")
    ap.add_argument("--keep", type=Path, help="use this folder instead of a temp dir, and keep it")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        print("wrk not found: apt-get install -y wrk", file=sys.stderr)
        return 2

    def on_term(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    work = args.keep or Path(tempfile.mkdtemp(prefix="modelyard-bench-serving-"))
    work.mkdir(parents=True, exist_ok=True)
    servers = Servers(work)
    try:
        return run(args, work, servers)
    except KeyboardInterrupt:
        print("\ninterrupted; stopping servers")
        return 130
    finally:
        servers.stop_all()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def run(args: argparse.Namespace, work: Path, servers: Servers) -> int:  # noqa: PLR0915
    project_dir, model_dir = work / "project", work / "mlserver" / MODEL_NAME
    model_dir.mkdir(parents=True)
    spec = project_dir / "modelyard.yaml"
    print(f"setting up the demo project in {project_dir} (quickstart, 20,000 rows) ...")
    t0 = time.monotonic()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "modelyard",
            "quickstart",
            "--dir",
            str(project_dir),
            "--rows",
            "20000",
            "--requests",
            "1",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    row = export_model(spec, model_dir)
    print(
        f"  done in {time.monotonic() - t0:.0f} s; {MODEL_NAME} v{row['version']}, "
        f"{len(row['encoded'])} features"
    )

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ours_port = free_port()
    ours = servers.start(
        "modelyard",
        [
            *pin(0),
            sys.executable,
            "-m",
            "modelyard",
            "--spec",
            str(spec),
            "serve",
            f"{MODEL_NAME}@champion",
            "--host",
            "127.0.0.1",
            "--port",
            str(ours_port),
            "--workers",
            "1",
        ],
        env,
    )
    ours_base = f"http://127.0.0.1:{ours_port}"
    wait_ready(f"{ours_base}/v2/health/ready", ours)

    targets: dict[str, dict[str, Any]] = {}
    ours_body = json.dumps([row["record"]])
    targets["modelyard"] = {"url": f"{ours_base}/predict", "body": ours_body}
    got = post(targets["modelyard"]["url"], ours_body.encode())["predictions"][0]["probability"]
    print(f"  modelyard  /predict probability {got:.6f} (in-process {row['expected']:.6f})")

    peer_failure = None if not args.ours_only else "skipped (--ours-only)"
    if peer_failure is None:
        peer_failure = ensure_peer()
    if peer_failure is None:
        p_http, p_grpc, p_metrics = free_port(), free_port(), free_port()
        (work / "mlserver" / "settings.json").write_text(
            json.dumps(
                {
                    "host": "127.0.0.1",
                    "http_port": p_http,
                    "grpc_port": p_grpc,
                    "metrics_port": p_metrics,
                    "parallel_workers": 0,
                    "debug": False,
                }
            )
        )
        peer = servers.start(
            "mlserver",
            [*pin(0), str(BENCH_VENV / "bin" / "mlserver"), "start", "."],
            env,
            cwd=work / "mlserver",
        )
        peer_base = f"http://127.0.0.1:{p_http}"
        try:
            wait_ready(f"{peer_base}/v2/models/{MODEL_NAME}/ready", peer)
            peer_body = json.dumps(
                {
                    "inputs": [
                        {
                            "name": "input-0",
                            "shape": [1, len(row["encoded"])],
                            "datatype": "FP32",
                            "data": row["encoded"],
                        }
                    ]
                }
            )
            targets["mlserver"] = {
                "url": f"{peer_base}/v2/models/{MODEL_NAME}/infer",
                "body": peer_body,
            }
            answer = post(targets["mlserver"]["url"], peer_body.encode())["outputs"][0]["data"][0]
            print(f"  MLServer   /v2/.../infer predict {answer:.6f} (FP32 input)")
        except Exception as exc:
            peer_failure = f"MLServer failed: {exc}\n{servers.log('mlserver')}"
            targets.pop("mlserver", None)

    for name, t in targets.items():
        lua = work / f"{name}.lua"
        lua.write_text(LUA.format(body=json.dumps(t["body"])))
        t["lua"] = lua
        run_wrk(t["url"], lua, 16, args.warmup)  # warm-up, discarded

    results: dict[tuple[str, int], dict[str, float]] = {}
    for c in (1, 16):
        for name, t in targets.items():
            results[(name, c)] = run_wrk(t["url"], t["lua"], c, args.duration)

    print()
    print(
        f"single-row requests, HTTP/1.1 keep-alive, loopback; servers on core 0, wrk on core 1; "
        f"{args.duration} s per cell after a {args.warmup} s warm-up"
    )
    print(
        "  modelyard: POST /predict, raw JSON record (strings for categoricals), "
        "validated + encoded per request"
    )
    print(
        "  MLServer : POST /v2/models/loans/infer, one FP32 tensor [1, n] "
        "already encoded by our encoder"
    )
    print(f"{'server':<11}{'conns':>6}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}")
    for c in (1, 16):
        for name in targets:
            r = results[(name, c)]
            print(f"{name:<11}{c:>6}{r['rps']:>10,.0f}{r['p50']:>9.2f}{r['p99']:>9.2f}")
    if "mlserver" in targets:
        print("ours/peer (req/s: >1 is better; latency: <1 is better)")
        for c in (1, 16):
            a, b = results[("modelyard", c)], results[("mlserver", c)]
            print(
                f"  {c:>2} conns: req/s x{a['rps'] / b['rps']:.2f}   p50 x{a['p50'] / b['p50']:.2f}"
                f"   p99 x{a['p99'] / b['p99']:.2f}"
            )
    else:
        print(f"peer not measured: {peer_failure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
