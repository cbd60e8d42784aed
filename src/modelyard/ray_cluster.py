"""Connecting to Ray, for every engine that runs on it (hyper-parameter search, batch scoring).

``ray_session`` connects to the cluster at ``RAY_ADDRESS`` if set, else starts a
local instance with one worker per CPU, and disconnects afterwards only if it
connected. Ray is an optional extra: a missing install or an unreachable
cluster is the caller's own error type, with the caller's way around it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from modelyard.errors import ModelyardError

RAY_ADDRESS_ENV = "RAY_ADDRESS"


def import_ray(error: type[ModelyardError], instead: str) -> Any:
    """The ``ray`` module, or ``error`` saying how to install it or what to do ``instead``."""
    try:
        import ray
    except ImportError as exc:
        raise error(
            "The Ray engine needs Ray, which is not installed: install modelyard[ray] "
            f"(pip install 'modelyard[ray]'), or {instead}."
        ) from exc
    return ray


@contextmanager
def ray_session(error: type[ModelyardError], instead: str) -> Iterator[Any]:
    """Ray, connected (see the module docstring); failures raise ``error``."""
    ray = import_ray(error, instead)
    if ray.is_initialized():
        yield ray
        return
    options: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": False,
        "ignore_reinit_error": True,
        "logging_level": logging.ERROR,  # not its notes on auth tokens and dashboards
    }
    if not os.environ.get(RAY_ADDRESS_ENV):  # a new instance, even if `ray start` ran here
        options |= {"address": "local", "num_cpus": os.cpu_count() or 2}
    try:
        ray.init(**options)
    except Exception as exc:
        raise error(
            f"Cannot start or reach Ray ({type(exc).__name__}: {exc}). Check {RAY_ADDRESS_ENV} "
            f"(unset it to start a local instance), or {instead}."
        ) from exc
    try:
        yield ray
    finally:
        ray.shutdown()
