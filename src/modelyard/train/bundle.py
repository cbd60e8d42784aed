"""Model bundles: everything serving needs to answer, in content-addressed blobs.

A bundle is a JSON manifest blob that names the model blob by sha256 and
carries the fitted cleaning recipe (optional), the fitted feature encoder, the
task, the class labels (multiclass: code i is ``classes[i]``), the decision
threshold (binary) and the library versions it was saved with. When the model
was also exported to ONNX, ``manifest["onnx"]`` names that blob with its size
and the largest difference from the native model measured at export. A model
trained elsewhere and imported (``modelyard.registry.imports``) records where
it came from in ``manifest["imported_from"]`` (file name, sha256, flavor); a
model trained here has no such key. The
recipe and the encoder are replayed, in that order, on every row the model
scores — in training, evaluation, batch and serving alike. A model version in
the registry points at the manifest's digest; loading verifies both blobs
before parsing either.

``predict(X)`` follows the output convention of ``modelyard.train.families``
(binary → P(positive), multiclass → (n, k) probabilities, regression →
predictions); ``predict_proba`` is the same, under the name serving uses.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from modelyard.data.cleaning import Recipe
from modelyard.data.encoding import FeatureEncoder
from modelyard.errors import ArtifactError, ModelyardError
from modelyard.store import ArtifactStore, Blob
from modelyard.train import flavors
from modelyard.train.environment import LIBRARIES, library_versions

FORMAT = "modelyard.model/1"


@dataclass(frozen=True)
class OnnxBlob:
    """An ONNX export of the model, and its largest difference from the native scores."""

    data: bytes
    max_abs_diff: float


@dataclass
class ModelBundle:
    """A fitted model with its encoder and decision threshold, ready to score rows."""

    flavor: str
    scorer: flavors.Scorer
    encoder: FeatureEncoder
    task: str
    target: str
    threshold: float = 0.5
    manifest: dict[str, Any] | None = None
    recipe: Recipe | None = None
    classes: tuple[str, ...] | None = None

    @property
    def input_names(self) -> list[str]:
        """Fields a request carries (a unit column yes, an imputation indicator no)."""
        return self.recipe.inputs_for(self.encoder.names) if self.recipe else self.encoder.names

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Scores for an already encoded matrix, in the task's output convention."""
        return self.scorer.predict(X)

    def labels(self, scores: np.ndarray) -> np.ndarray | None:
        """The labels ``scores`` imply: binary 0/1 at the threshold, multiclass the class
        names (codes as text when the bundle names none), regression None."""
        if self.task == "binary":
            return (scores >= self.threshold).astype(np.int64)
        if self.task == "multiclass":
            classes = self.classes or tuple(str(i) for i in range(scores.shape[1]))
            named: np.ndarray = np.asarray(classes, dtype=object)[scores.argmax(1)]
            return named
        return None

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """The same as ``predict``: binary P(positive), multiclass (n, k), regression values."""
        return self.scorer.predict(X)

    def encode_frame(self, frame: pd.DataFrame) -> np.ndarray:
        """Raw rows of a frame → the model's matrix (the evaluation and batch path)."""
        if self.recipe is not None:
            frame = self.recipe.transform(frame, filter_rows=False)
        return self.encoder.transform(frame)

    def encode_records(self, records: list[Any]) -> np.ndarray:
        """Raw JSON records → the model's matrix, validated (the serving path)."""
        if self.recipe is not None:
            records = self.recipe.transform_records(records)
        return self.encoder.encode_records(records)

    def score_frame(self, frame: pd.DataFrame) -> np.ndarray:
        return self.predict(self.encode_frame(frame))

    @classmethod
    def from_bytes(
        cls, flavor: str, model_bytes: bytes, encoder: FeatureEncoder, task: str, target: str
    ) -> ModelBundle:
        """A bundle scoring with the model exactly as it will be saved and served."""
        return cls(flavor, flavors.load(flavor, model_bytes, task), encoder, task, target)

    def save(
        self,
        artifacts: ArtifactStore,
        model_bytes: bytes,
        onnx: OnnxBlob | None = None,
        *,
        provenance: dict[str, Any] | None = None,
    ) -> Blob:
        """Write the model blob (and the ONNX one), then the manifest; return the manifest.

        ``provenance`` (imported models only) is stored as ``manifest["imported_from"]``.
        """
        blob = artifacts.put_bytes(model_bytes)
        manifest: dict[str, Any] = {
            "format": FORMAT,
            "flavor": self.flavor,
            "task": self.task,
            "target": self.target,
            "threshold": self.threshold,
            "encoder": self.encoder.to_dict(),
            "recipe": self.recipe.to_dict() if self.recipe else None,
            "model": {"digest": blob.digest, "size": blob.size},
            "libraries": library_versions(),
        }
        if self.classes is not None:
            manifest["classes"] = list(self.classes)
        if onnx is not None:
            saved = artifacts.put_bytes(onnx.data)
            manifest["onnx"] = {
                "digest": saved.digest,
                "size": saved.size,
                "max_abs_diff": onnx.max_abs_diff,
            }
        if provenance is not None:
            manifest["imported_from"] = dict(provenance)
        self.manifest = manifest
        return artifacts.put_bytes(json.dumps(manifest, sort_keys=True).encode())


def load_bundle(artifacts: ArtifactStore, digest: str) -> ModelBundle:
    """Load and verify a bundle by its manifest digest."""
    manifest = json.loads(artifacts.get_bytes(digest))
    if manifest.get("format") != FORMAT:
        raise ArtifactError(
            f"Blob {digest[:12]} is not a modelyard model manifest "
            f"(format {manifest.get('format')!r}, expected {FORMAT!r})."
        )
    _warn_on_version_mismatch(manifest.get("libraries", {}))
    model_bytes = artifacts.get_bytes(manifest["model"]["digest"])
    scorer = flavors.load(manifest["flavor"], model_bytes, manifest["task"])
    classes = manifest.get("classes")
    return ModelBundle(
        flavor=manifest["flavor"],
        scorer=scorer,
        encoder=FeatureEncoder.from_dict(manifest["encoder"]),
        task=manifest["task"],
        target=manifest["target"],
        threshold=float(manifest["threshold"]),
        manifest=manifest,
        recipe=_recipe(manifest, digest),
        classes=tuple(classes) if classes is not None else None,
    )


def _recipe(manifest: dict[str, Any], digest: str) -> Recipe | None:
    if not manifest.get("recipe"):
        return None
    try:
        recipe = Recipe.from_dict(manifest["recipe"])
    except ModelyardError as exc:
        raise ArtifactError(
            f"Model manifest {digest[:12]} holds an unreadable cleaning recipe: {exc.message}"
        ) from exc
    if not recipe.is_fitted:
        raise ArtifactError(
            f"Model manifest {digest[:12]} holds an unfitted cleaning recipe; re-train the model."
        )
    return recipe


def _warn_on_version_mismatch(saved: dict[str, str]) -> None:
    now = library_versions()
    changed = {
        k: (v, now[k]) for k, v in saved.items() if k in LIBRARIES and k in now and now[k] != v
    }
    if changed:
        listed = ", ".join(f"{k} {old} → {new}" for k, (old, new) in sorted(changed.items()))
        warnings.warn(
            f"Model saved with other library versions ({listed}); predictions may "
            f"differ slightly. Re-train or pin the saved versions.",
            stacklevel=3,
        )
