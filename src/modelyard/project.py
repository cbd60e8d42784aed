"""The project: one spec, one metadata database, one artifact store.

``Project.open()`` finds ``modelyard.yaml`` (or takes ``--spec FILE``), loads
and validates it, opens the stores beside it (``.modelyard/`` by default;
``MODELYARD_DB_URL`` and ``MODELYARD_ARTIFACTS`` move them elsewhere) and
records the spec version it runs under. Every stage receives this object
explicitly; there is no global "current project".
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from modelyard.spec import Spec, find_spec, load_spec, spec_hash
from modelyard.store import ArtifactStore, Database, get_or_create, tables

STATE_FOLDER = ".modelyard"


@dataclass
class Project:
    """An opened project: its spec and the stores its records live in."""

    id: str
    root: Path
    spec: Spec
    spec_path: Path
    spec_hash: str
    db: Database
    artifacts: ArtifactStore

    @property
    def name(self) -> str:
        return self.spec.name

    @classmethod
    def open(cls, spec_path: str | Path | None = None, start: Path | None = None) -> Project:
        """Open the project whose spec is ``spec_path``, or ``modelyard.yaml`` in ``start``."""
        path = find_spec(start, explicit=Path(spec_path) if spec_path else None).resolve()
        spec = load_spec(path)
        folder = path.parent / STATE_FOLDER
        db = Database(Database.default_url(folder))
        artifacts = ArtifactStore(ArtifactStore.default_root(folder))
        digest = spec_hash(spec)
        project_id = _record(db, spec, digest)
        return cls(project_id, path.parent, spec, path, digest, db, artifacts)

    def close(self) -> None:
        self.db.dispose()


def _record(db: Database, spec: Spec, digest: str) -> str:
    """Get or create the project row and the row of this spec version."""
    with db.write() as session:
        project = get_or_create(session, tables.Project, {"name": spec.name})
        content = json.loads(spec.model_dump_json())
        key = {"project_id": project.id, "hash": digest}
        get_or_create(session, tables.SpecVersion, key, content=content)
        return project.id
