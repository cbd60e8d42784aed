"""Running the inference server: load a registered version and hand it to uvicorn.

Each worker process loads the model itself (uvicorn imports ``app_from_env``
as a factory), scores on one thread — several workers sharing OpenMP pools
oversubscribe the cores — and freezes the loaded objects out of the garbage
collector so that full collections under load stay short. SIGTERM drains:
uvicorn stops accepting, and requests already in flight (queued in the
batcher included) are answered before the process exits.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING

from modelyard.project import Project
from modelyard.serve.app import InferenceApp, ServeOptions, create_app
from modelyard.serve.model import load_served, served_from

if TYPE_CHECKING:
    from modelyard.monitor.feedback import FeedbackLog
    from modelyard.monitor.predlog import PredictionLog

ENV_SPEC = "MODELYARD_SERVE_SPEC"
ENV_MODEL = "MODELYARD_SERVE_MODEL"
ENV_RUNTIME = "MODELYARD_SERVE_RUNTIME"
ENV_OPTIONS = "MODELYARD_SERVE_OPTIONS"
DRAIN_SECONDS = 30


def app_from_env() -> InferenceApp:
    """The uvicorn factory: reads which model to serve, and how, from the environment."""
    spec = os.environ.get(ENV_SPEC) or None
    ref = os.environ[ENV_MODEL]
    runtime = os.environ.get(ENV_RUNTIME, "auto")
    options = ServeOptions(**json.loads(os.environ.get(ENV_OPTIONS, "{}")))
    project = Project.open(spec)
    try:  # one opening of the project for the model and its logs
        served = served_from(project, ref, runtime)
        prediction_log, feedback = _monitoring_logs(project, served.name)
    finally:
        project.close()
    app = create_app(
        served,
        options,
        reload=lambda: load_served(spec, ref, runtime),
        prediction_log=prediction_log,
        feedback=feedback,
    )
    gc.collect()
    gc.freeze()
    return app


def _monitoring_logs(
    project: Project, model: str
) -> tuple[PredictionLog | None, FeedbackLog | None]:
    """This worker's prediction and feedback logs, unless the spec turns logging off."""
    from modelyard.monitor.feedback import FeedbackLog
    from modelyard.monitor.predlog import PredictionLog

    prediction_log = PredictionLog.for_project(project, model)
    if prediction_log is None:
        return None, None
    return prediction_log, FeedbackLog.for_project(project, model)


def run_server(
    spec_path: Path,
    ref: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    workers: int = 1,
    runtime: str = "auto",
    options: ServeOptions | None = None,
    log_level: str = "warning",
) -> None:
    """Serve ``ref`` until interrupted (blocks)."""
    import uvicorn

    load_served(spec_path, ref, runtime)  # fail here, with a clear error, before any worker
    os.environ.update(
        {
            ENV_SPEC: str(spec_path),
            ENV_MODEL: ref,
            ENV_RUNTIME: runtime,
            ENV_OPTIONS: json.dumps(dataclasses.asdict(options or ServeOptions())),
            "OMP_NUM_THREADS": "1",
        }
    )
    uvicorn.run(
        "modelyard.serve.server:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        log_level=log_level,
        access_log=False,
        server_header=False,
        date_header=False,
        timeout_graceful_shutdown=DRAIN_SECONDS,
        backlog=4096,
    )


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


__all__ = ["app_from_env", "free_port", "load_served", "run_server"]
