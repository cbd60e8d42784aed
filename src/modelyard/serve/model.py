"""The model a server answers with: a registered version, loaded and verified, on a runtime.

Two runtimes score the same bundle. *native* calls the saved model (a
LightGBM booster, a scikit-learn estimator); *onnx* calls the ONNX twin made at
registration, which ONNX Runtime scores about twice as fast for single rows.
``auto`` takes the twin only when the check stored with it at registration
shows it within ``ONNX_SERVE_TOLERANCE`` of the native model on real rows;
otherwise the native model serves, whatever it costs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from modelyard.errors import ServingError
from modelyard.serve.signature import Signature
from modelyard.store import ArtifactStore
from modelyard.train.bundle import ModelBundle

if TYPE_CHECKING:
    from modelyard.project import Project

RUNTIMES = ("auto", "native", "onnx")
ONNX_SERVE_TOLERANCE = 1e-6
"""The largest difference from the native scores an ONNX twin may show and still serve."""

log = logging.getLogger("modelyard.serve")


@dataclass
class ServedModel:
    """A loaded model version, the name it answers to, and the function that scores it."""

    name: str
    version: int
    bundle: ModelBundle
    runtime: str = "native"
    score: Callable[[np.ndarray], np.ndarray] | None = None
    signature: Signature = field(init=False)

    def __post_init__(self) -> None:
        if self.score is None:
            self.score = self.bundle.predict
        self.signature = Signature(self.bundle)

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


def load_served(spec_path: str | Path | None, ref: str, runtime: str = "auto") -> ServedModel:
    """Open the project, then ``served_from`` it."""
    from modelyard.project import Project

    project = Project.open(spec_path)
    try:
        return served_from(project, ref, runtime)
    finally:
        project.close()


def served_from(project: Project, ref: str, runtime: str = "auto") -> ServedModel:
    """Resolve ``ref`` in ``project``, load its verified bundle and pick the runtime."""
    from modelyard.registry.versions import resolve
    from modelyard.train.bundle import load_bundle

    version = resolve(project, ref)
    bundle = load_bundle(project.artifacts, version.digest)
    chosen, score = select_runtime(bundle, project.artifacts, runtime)
    return ServedModel(version.name, version.version, bundle, chosen, score)


def select_runtime(
    bundle: ModelBundle, artifacts: ArtifactStore, prefer: str = "auto"
) -> tuple[str, Callable[[np.ndarray], np.ndarray]]:
    """The runtime's name and its scoring function for ``bundle``."""
    if prefer not in RUNTIMES:
        raise ServingError(f"Unknown runtime '{prefer}'; choose one of {list(RUNTIMES)}.")
    if bundle.flavor == "onnx":  # an imported ONNX graph: its native runtime is ONNX Runtime
        return "onnx", bundle.predict
    twin: dict[str, Any] | None = (bundle.manifest or {}).get("onnx")
    if prefer == "native" or twin is None:
        if prefer == "onnx":
            raise ServingError(
                "This model version has no ONNX twin (its converter could not make a "
                "faithful one at registration); serve it with --runtime native or auto."
            )
        return "native", bundle.predict
    diff = float(twin.get("max_abs_diff", float("inf")))
    if prefer == "auto" and not diff <= ONNX_SERVE_TOLERANCE:
        log.info("ONNX twin differs by %.3g > %g; serving the native model", diff, 1e-6)
        return "native", bundle.predict
    from modelyard.train.onnx import OnnxScorer

    scorer = OnnxScorer(artifacts.get_bytes(twin["digest"]), bundle.task)
    return "onnx", scorer.predict
