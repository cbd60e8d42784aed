"""Alert history: one row per firing (then resolved) or suppressed episode of an alert rule.

Revision ID: 0004
Revises: 0003
Create Date: 2026-03-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None

# Types frozen here rather than imported from modelyard.store.tables, so this
# revision keeps creating the same schema however the models change later.
TIMESTAMP = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("project_id", sa.String(length=26), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("rule", sa.String(length=200), nullable=False),
        sa.Column("metric", sa.String(length=200), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("value", sa.Double(), nullable=True),
        sa.Column("threshold", sa.Double(), nullable=False),
        sa.Column("direction", sa.String(length=8), nullable=False),
        sa.Column("window_seconds", sa.BigInteger(), nullable=False),
        sa.Column("started_at", TIMESTAMP, nullable=False),
        sa.Column("resolved_at", TIMESTAMP, nullable=True),
        sa.Column("last_evaluated_at", TIMESTAMP, nullable=False),
        sa.Column("notifications", JSON, nullable=False),
        sa.CheckConstraint(
            "state IN ('firing', 'resolved', 'suppressed')", name=op.f("ck_alerts_state")
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_alerts_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
    )
    op.create_index(
        "ix_alerts_project_id_model_rule_started_at",
        "alerts",
        ["project_id", "model", "rule", "started_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_alerts_project_id_model_rule_started_at", table_name="alerts")
    op.drop_table("alerts")
