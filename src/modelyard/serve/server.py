"""Running the inference server: load a registered version and hand it to uvicorn.

Each worker process loads the model itself (uvicorn imports ``app_from_env``
as a factory), scores on one thread — several workers sharing OpenMP pools
oversubscribe the cores — and freezes the loaded objects out of the garbage
collector so that full collections under load stay short.
"""

from __future__ import annotations

import gc
import os
import socket
from pathlib import Path
from typing import Any

from modelyard.serve.app import ServedModel, create_app

ENV_SPEC = "MODELYARD_SERVE_SPEC"
ENV_MODEL = "MODELYARD_SERVE_MODEL"


def load_served(spec_path: str | Path | None, ref: str) -> ServedModel:
    """Resolve ``ref`` in the project and load its verified bundle."""
    from modelyard.project import Project
    from modelyard.registry.versions import resolve
    from modelyard.train.bundle import load_bundle

    project = Project.open(spec_path)
    try:
        version = resolve(project, ref)
        bundle = load_bundle(project.artifacts, version.digest)
    finally:
        project.close()
    return ServedModel(version.name, version.version, bundle)


def app_from_env() -> Any:
    """The uvicorn factory: reads which model to serve from the environment."""
    served = load_served(os.environ.get(ENV_SPEC) or None, os.environ[ENV_MODEL])
    app = create_app(served)
    gc.collect()
    gc.freeze()
    return app


def run_server(
    spec_path: Path,
    ref: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    workers: int = 1,
    log_level: str = "warning",
) -> None:
    """Serve ``ref`` until interrupted (blocks)."""
    import uvicorn

    load_served(spec_path, ref)  # fail here, with a clear error, before any worker starts
    os.environ.update({ENV_SPEC: str(spec_path), ENV_MODEL: ref, "OMP_NUM_THREADS": "1"})
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
    )


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
