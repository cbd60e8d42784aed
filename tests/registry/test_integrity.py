"""A registered model whose bytes changed on disk is refused at load, never served."""

import json
import stat
from pathlib import Path

import pytest

from modelyard.data.datasets import add_dataset
from modelyard.data.demo import make_loans
from modelyard.errors import ArtifactError
from modelyard.project import Project
from modelyard.registry.versions import register_candidate, resolve
from modelyard.serve.model import load_served
from modelyard.train.bundle import load_bundle
from modelyard.train.trainer import train_candidates


def _flip_a_byte(path: Path) -> None:
    path.chmod(stat.S_IRUSR | stat.S_IWUSR)  # blobs are stored read-only
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def test_changed_model_bytes_are_refused_with_an_integrity_error(project: Project) -> None:
    frame = make_loans(1_500, recent_share=0.0, seed=3)
    dataset = add_dataset(project, "loans", frame)
    best = train_candidates(project, dataset, frame, families=["logistic"])[0]
    register_candidate(project, "loans", best)
    version = resolve(project, "loans@1")
    manifest = json.loads(project.artifacts.get_bytes(version.digest))
    model_blob = project.artifacts.local_path(manifest["model"]["digest"])
    load_bundle(project.artifacts, version.digest)  # loads while intact

    _flip_a_byte(model_blob)
    with pytest.raises(ArtifactError, match=manifest["model"]["digest"][:12]):
        load_bundle(project.artifacts, version.digest)
    with pytest.raises(ArtifactError):
        load_served(project.spec_path, "loans@1")
