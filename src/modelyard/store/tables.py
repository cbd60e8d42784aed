"""The metadata schema: one SQLAlchemy class per table.

The same classes run on SQLite and PostgreSQL, so only portable types are
used: JSON (JSONB on PostgreSQL), timezone-aware UTC timestamps, ULID string
ids, and CHECK constraints for the few columns that hold a closed set of
states. Constraint names follow one naming convention so migrations can
refer to them by name on both backends.

Record ids default to a fresh ULID and ``created_at`` columns to the current
UTC time, so a caller only fills in what it knows. There are no ORM
relationships: each data-access module queries what it needs explicitly,
which keeps lazy loads out of detached objects.

The Alembic revisions in ``migrations/versions`` create exactly this schema;
a test compares the two on both backends. Changing a class here means adding
a revision there.

    projects ─┬─ spec_versions
              ├─ datasets ── dataset_versions ── dataset_lineage (child, parent)
              ├─ runs ─┬─ run_params, run_metrics, run_tags, run_artifacts
              │        └─ run_inputs ── dataset_versions
              ├─ registered_models ── model_versions ─┬─ model_aliases
              │                                       └─ approvals ── users ── api_tokens
              ├─ deployments ── model_versions
              └─ alerts (monitoring: one row per firing or suppressed episode of a rule)
    audit_events (no foreign keys: the log outlives what it describes)
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from modelyard.store.ids import new_id, utcnow

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JSON_TYPE = sa.JSON().with_variant(JSONB(), "postgresql")
"""JSON everywhere, stored as JSONB on PostgreSQL so it can be indexed and compared."""

BIGINT_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
"""A 64-bit autoincrementing key; SQLite only autoincrements a column typed INTEGER."""

ID = sa.String(26)
NAME = sa.String(200)
KEY = sa.String(250)
HASH = sa.String(64)


class UtcDateTime(sa.TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC when read back.

    SQLite keeps no time zone, so values are normalised to UTC on the way in
    and tagged as UTC on the way out; naive datetimes are refused because
    their zone is a guess.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(
                f"Timestamp {value.isoformat()} has no time zone; "
                "use modelyard.store.utcnow() or an aware datetime."
            )
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """The declarative base; its ``metadata`` is the whole schema."""

    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UtcDateTime()}  # noqa: RUF012


def _id() -> Mapped[str]:
    return mapped_column(ID, primary_key=True, default=new_id)


def _created_at() -> Mapped[datetime]:
    return mapped_column(default=utcnow)


def _fk(target: str, ondelete: str, *, nullable: bool = False) -> Mapped[Any]:
    return mapped_column(ID, sa.ForeignKey(target, ondelete=ondelete), nullable=nullable)


def _one_of(column: str, values: tuple[str, ...]) -> sa.CheckConstraint:
    allowed = ", ".join(f"'{v}'" for v in values)
    return sa.CheckConstraint(f"{column} IN ({allowed})", name=column)


# ---------------------------------------------------------------- projects, data (0001)


class Project(Base):
    __tablename__ = "projects"

    id: Mapped[str] = _id()
    name: Mapped[str] = mapped_column(NAME, unique=True)
    created_at: Mapped[datetime] = _created_at()


class SpecVersion(Base):
    """One version of a project's modelyard.yaml, keyed by its sha256."""

    __tablename__ = "spec_versions"
    __table_args__ = (sa.UniqueConstraint("project_id", "hash"),)

    id: Mapped[str] = _id()
    project_id: Mapped[str] = _fk("projects.id", "CASCADE")
    hash: Mapped[str] = mapped_column(HASH)
    content: Mapped[Any] = mapped_column(JSON_TYPE)
    created_at: Mapped[datetime] = _created_at()


class Dataset(Base):
    __tablename__ = "datasets"
    __table_args__ = (sa.UniqueConstraint("project_id", "name"),)

    id: Mapped[str] = _id()
    project_id: Mapped[str] = _fk("projects.id", "CASCADE")
    name: Mapped[str] = mapped_column(NAME)
    created_at: Mapped[datetime] = _created_at()


DATASET_KINDS = ("raw", "clean", "features")


class DatasetVersion(Base):
    """An immutable version of a dataset; its rows live in the artifact ``blob``."""

    __tablename__ = "dataset_versions"
    __table_args__ = (
        sa.UniqueConstraint("dataset_id", "version"),
        sa.UniqueConstraint("dataset_id", "content_hash"),
        _one_of("kind", DATASET_KINDS),
    )

    id: Mapped[str] = _id()
    dataset_id: Mapped[str] = _fk("datasets.id", "CASCADE")
    version: Mapped[int]
    kind: Mapped[str] = mapped_column(sa.String(16))
    content_hash: Mapped[str] = mapped_column(HASH)
    blob: Mapped[str] = mapped_column(HASH)
    n_rows: Mapped[int] = mapped_column(sa.BigInteger)
    n_columns: Mapped[int]
    schema: Mapped[Any] = mapped_column(JSON_TYPE)
    transformation: Mapped[Any] = mapped_column(JSON_TYPE, nullable=True)
    created_at: Mapped[datetime] = _created_at()
    created_by: Mapped[str | None] = mapped_column(NAME)
    source: Mapped[Any] = mapped_column(JSON_TYPE, nullable=True)  # 0003: file, format, sha256


class DatasetLineage(Base):
    """Edge child → parent; a parent with children cannot be deleted."""

    __tablename__ = "dataset_lineage"

    child_version_id: Mapped[str] = mapped_column(
        ID, sa.ForeignKey("dataset_versions.id", ondelete="CASCADE"), primary_key=True
    )
    parent_version_id: Mapped[str] = mapped_column(
        ID,
        sa.ForeignKey("dataset_versions.id", ondelete="RESTRICT"),
        primary_key=True,
        index=True,
    )


# ---------------------------------------------------------------- runs (0001)

RUN_STATUSES = ("running", "finished", "failed", "killed")


class Run(Base):
    """One tracked piece of work; a search's trials point at it via ``parent_run_id``."""

    __tablename__ = "runs"
    __table_args__ = (
        sa.Index("ix_runs_project_id_started_at", "project_id", "started_at"),
        _one_of("status", RUN_STATUSES),
    )

    id: Mapped[str] = _id()
    project_id: Mapped[str] = _fk("projects.id", "CASCADE")
    parent_run_id: Mapped[str | None] = mapped_column(
        ID, sa.ForeignKey("runs.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(NAME)
    kind: Mapped[str] = mapped_column(sa.String(32))
    status: Mapped[str] = mapped_column(sa.String(16), default="running")
    spec_hash: Mapped[str | None] = mapped_column(HASH)
    code_version: Mapped[Any] = mapped_column(JSON_TYPE, nullable=True)
    environment: Mapped[Any] = mapped_column(JSON_TYPE, nullable=True)
    seed: Mapped[int | None] = mapped_column(sa.BigInteger)
    split: Mapped[Any] = mapped_column(JSON_TYPE, nullable=True)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None]
    wall_seconds: Mapped[float | None]
    cpu_seconds: Mapped[float | None]


class RunParam(Base):
    __tablename__ = "run_params"

    run_id: Mapped[str] = mapped_column(
        ID, sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(KEY, primary_key=True)
    value: Mapped[str] = mapped_column(sa.Text)


class RunMetric(Base):
    """One value of a metric at a step; a metric's history is many rows."""

    __tablename__ = "run_metrics"
    __table_args__ = (sa.Index("ix_run_metrics_run_id_key_step", "run_id", "key", "step"),)

    id: Mapped[int] = mapped_column(BIGINT_PK, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = _fk("runs.id", "CASCADE")
    key: Mapped[str] = mapped_column(KEY)
    value: Mapped[float]
    step: Mapped[int] = mapped_column(sa.BigInteger, default=0, server_default="0")
    timestamp: Mapped[datetime] = mapped_column(default=utcnow)


class RunTag(Base):
    __tablename__ = "run_tags"

    run_id: Mapped[str] = mapped_column(
        ID, sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(KEY, primary_key=True)
    value: Mapped[str] = mapped_column(sa.Text)


class RunArtifact(Base):
    """A named file a run produced; the content is the blob ``digest``."""

    __tablename__ = "run_artifacts"

    run_id: Mapped[str] = mapped_column(
        ID, sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(sa.String(500), primary_key=True)
    digest: Mapped[str] = mapped_column(HASH, index=True)
    size: Mapped[int] = mapped_column(sa.BigInteger)
    media_type: Mapped[str | None] = mapped_column(sa.String(100))


class RunInput(Base):
    """A dataset version a run read, and in which role (train, validation, test, ...)."""

    __tablename__ = "run_inputs"

    run_id: Mapped[str] = mapped_column(
        ID, sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True
    )
    dataset_version_id: Mapped[str] = mapped_column(
        ID,
        sa.ForeignKey("dataset_versions.id", ondelete="RESTRICT"),
        primary_key=True,
        index=True,
    )
    role: Mapped[str] = mapped_column(sa.String(32), primary_key=True)


# ---------------------------------------------------------------- registry (0002)


class RegisteredModel(Base):
    __tablename__ = "registered_models"
    __table_args__ = (sa.UniqueConstraint("project_id", "name"),)

    id: Mapped[str] = _id()
    project_id: Mapped[str] = _fk("projects.id", "CASCADE")
    name: Mapped[str] = mapped_column(NAME)
    description: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = _created_at()


MODEL_STAGES = ("none", "staging", "production", "archived")


class ModelVersion(Base):
    """A numbered, immutable model; ``digest`` is the blob of its manifest.

    ``baseline_digest`` is the blob of its drift baseline (``monitor.baseline``),
    fitted on its training data at registration, or on first use for versions
    registered without one.
    """

    __tablename__ = "model_versions"
    __table_args__ = (
        sa.UniqueConstraint("model_id", "version"),
        _one_of("stage", MODEL_STAGES),
    )

    id: Mapped[str] = _id()
    model_id: Mapped[str] = _fk("registered_models.id", "CASCADE")
    version: Mapped[int]
    run_id: Mapped[str | None] = mapped_column(
        ID, sa.ForeignKey("runs.id", ondelete="SET NULL"), index=True
    )
    spec_hash: Mapped[str | None] = mapped_column(HASH)
    flavor: Mapped[str] = mapped_column(sa.String(64))
    digest: Mapped[str] = mapped_column(HASH)
    baseline_digest: Mapped[str | None] = mapped_column(HASH)
    signature: Mapped[Any] = mapped_column(JSON_TYPE, nullable=True)
    metrics: Mapped[Any] = mapped_column(JSON_TYPE, nullable=True)
    gates: Mapped[Any] = mapped_column(JSON_TYPE, nullable=True)
    stage: Mapped[str] = mapped_column(sa.String(16), default="none", server_default="none")
    created_by: Mapped[str | None] = mapped_column(NAME)
    created_at: Mapped[datetime] = _created_at()
    description: Mapped[str | None] = mapped_column(sa.Text)


class ModelAlias(Base):
    """A movable name (``champion``) pointing at one version of a model."""

    __tablename__ = "model_aliases"

    model_id: Mapped[str] = mapped_column(
        ID, sa.ForeignKey("registered_models.id", ondelete="CASCADE"), primary_key=True
    )
    alias: Mapped[str] = mapped_column(sa.String(100), primary_key=True)
    model_version_id: Mapped[str] = _fk("model_versions.id", "CASCADE")


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = _id()
    name: Mapped[str] = mapped_column(NAME, unique=True)
    role: Mapped[str] = mapped_column(sa.String(32))
    created_at: Mapped[datetime] = _created_at()
    disabled: Mapped[bool] = mapped_column(default=False, server_default=sa.false())


APPROVAL_DECISIONS = ("approve", "reject")


class Approval(Base):
    """One user's decision on one model version; a user decides once per version."""

    __tablename__ = "approvals"
    __table_args__ = (
        sa.UniqueConstraint("model_version_id", "user_id"),
        _one_of("decision", APPROVAL_DECISIONS),
    )

    id: Mapped[str] = _id()
    model_version_id: Mapped[str] = _fk("model_versions.id", "CASCADE")
    user_id: Mapped[str] = mapped_column(
        ID, sa.ForeignKey("users.id", ondelete="RESTRICT"), index=True
    )
    decision: Mapped[str] = mapped_column(sa.String(16))
    comment: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = _created_at()


class ApiToken(Base):
    """A bearer token; only its sha256 is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[str] = _id()
    user_id: Mapped[str] = mapped_column(
        ID, sa.ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(NAME)
    token_hash: Mapped[str] = mapped_column(HASH, unique=True)
    created_at: Mapped[datetime] = _created_at()
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class Deployment(Base):
    """A named serving target; a deployed model version cannot be deleted."""

    __tablename__ = "deployments"
    __table_args__ = (sa.UniqueConstraint("project_id", "name"),)

    id: Mapped[str] = _id()
    project_id: Mapped[str] = _fk("projects.id", "CASCADE")
    name: Mapped[str] = mapped_column(NAME)
    model_version_id: Mapped[str] = mapped_column(
        ID, sa.ForeignKey("model_versions.id", ondelete="RESTRICT"), index=True
    )
    status: Mapped[str] = mapped_column(sa.String(32))
    config: Mapped[Any] = mapped_column(JSON_TYPE, nullable=True)
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class AuditEvent(Base):
    """One entry of the append-only audit log; ``hash`` chains it to ``prev_hash``."""

    __tablename__ = "audit_events"
    __table_args__ = (
        sa.Index("ix_audit_events_object_type_object_id", "object_type", "object_id"),
        {"sqlite_autoincrement": True},
    )

    seq: Mapped[int] = mapped_column(BIGINT_PK, primary_key=True, autoincrement=True)
    ts: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(NAME)
    action: Mapped[str] = mapped_column(sa.String(100))
    object_type: Mapped[str] = mapped_column(sa.String(50))
    object_id: Mapped[str] = mapped_column(NAME)
    payload: Mapped[Any] = mapped_column(JSON_TYPE, nullable=True)
    prev_hash: Mapped[str | None] = mapped_column(HASH)
    hash: Mapped[str] = mapped_column(HASH, unique=True)


# ---------------------------------------------------------------- monitoring (0004)

ALERT_STATES = ("firing", "resolved", "suppressed")


class Alert(Base):
    """One episode of an alert rule on a model: it fired (then resolved), or was suppressed.

    An episode is open while ``resolved_at`` is null. ``notifications`` lists
    each delivery attempt: ``{"event", "channel", "ok", "error", "at"}``.
    """

    __tablename__ = "alerts"
    __table_args__ = (
        sa.Index(
            "ix_alerts_project_id_model_rule_started_at",
            "project_id",
            "model",
            "rule",
            "started_at",
        ),
        _one_of("state", ALERT_STATES),
    )

    id: Mapped[str] = _id()
    project_id: Mapped[str] = _fk("projects.id", "CASCADE")
    model: Mapped[str] = mapped_column(NAME)
    version: Mapped[int | None]
    rule: Mapped[str] = mapped_column(NAME)
    metric: Mapped[str] = mapped_column(NAME)
    severity: Mapped[str] = mapped_column(sa.String(16))
    state: Mapped[str] = mapped_column(sa.String(16))
    value: Mapped[float | None]
    threshold: Mapped[float]
    direction: Mapped[str] = mapped_column(sa.String(8))
    window_seconds: Mapped[int] = mapped_column(sa.BigInteger)
    started_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None]
    last_evaluated_at: Mapped[datetime]
    notifications: Mapped[Any] = mapped_column(JSON_TYPE, default=list)
