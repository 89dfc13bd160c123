"""event routing, outages, work orders

Meter events are routed by rule (docs/hes.md#event-routing): ``event_routing_state`` holds the
cursor (the last ``meter_event`` routed), ``event_episode`` pairs occurrences with restorations,
``outage`` coalesces power failures per transformer or feeder, ``event_action`` records what
routing did, ``tamper_flag`` and ``load_violation`` are kept for the CIS, and ``work_order`` is
the field work sent to the WFM.

Revision ID: 0008
Revises: 0007
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _at(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "event_routing_state",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("last_event_id", sa.Integer(), nullable=False),
        sa.Column("rules_version", sa.String(length=32), nullable=False),
        _at("updated_at"),
        sa.Column("gap_horizon", sa.Integer(), nullable=True),
        _at("gap_seen_at", True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_event_routing_state")),
    )
    op.create_table(
        "outage",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("level", sa.String(length=8), nullable=False),
        sa.Column("dt_id", sa.Integer(), nullable=True),
        sa.Column("feeder_id", sa.Integer(), nullable=True),
        sa.Column("meter_id", sa.Integer(), nullable=True),
        _at("started_at"),
        _at("restored_at", True),
        sa.Column("meters_affected", sa.Integer(), nullable=False),
        sa.Column("meters_restored", sa.Integer(), nullable=False),
        _at("notified_oms_at", True),
        _at("created_at"),
        sa.ForeignKeyConstraint(
            ["dt_id"], ["distribution_transformer.id"], name=op.f("fk_outage_dt_id_distribution_transformer")
        ),
        sa.ForeignKeyConstraint(["feeder_id"], ["feeder.id"], name=op.f("fk_outage_feeder_id_feeder")),
        sa.ForeignKeyConstraint(["meter_id"], ["meter.id"], name=op.f("fk_outage_meter_id_meter")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outage")),
    )
    with op.batch_alter_table("outage", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_outage_dt_id"), ["dt_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_outage_feeder_id"), ["feeder_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_outage_restored_at"), ["restored_at"], unique=False)

    op.create_table(
        "event_episode",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("meter_id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("rule", sa.String(length=64), nullable=False),
        _at("opened_at"),
        _at("closed_at", True),
        sa.Column("occurrence_event_id", sa.Integer(), nullable=False),
        sa.Column("restoration_event_id", sa.Integer(), nullable=True),
        sa.Column("outage_id", sa.Integer(), nullable=True),
        _at("valid_at", True),
        sa.ForeignKeyConstraint(["meter_id"], ["meter.id"], name=op.f("fk_event_episode_meter_id_meter")),
        sa.ForeignKeyConstraint(
            ["occurrence_event_id"],
            ["meter_event.id"],
            name=op.f("fk_event_episode_occurrence_event_id_meter_event"),
        ),
        sa.ForeignKeyConstraint(
            ["restoration_event_id"],
            ["meter_event.id"],
            name=op.f("fk_event_episode_restoration_event_id_meter_event"),
        ),
        sa.ForeignKeyConstraint(["outage_id"], ["outage.id"], name=op.f("fk_event_episode_outage_id_outage")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_episode")),
        sa.UniqueConstraint("occurrence_event_id", name=op.f("uq_event_episode_occurrence_event_id")),
    )
    with op.batch_alter_table("event_episode", schema=None) as batch_op:
        batch_op.create_index(
            "ix_event_episode_meter_open", ["meter_id", "event_id", "closed_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_event_episode_outage_id"), ["outage_id"], unique=False)

    op.create_table(
        "event_action",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("meter_event_id", sa.Integer(), nullable=True),
        sa.Column("outage_id", sa.Integer(), nullable=True),
        sa.Column("target", sa.String(length=8), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        _at("at"),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["meter_event_id"], ["meter_event.id"], name=op.f("fk_event_action_meter_event_id_meter_event")
        ),
        sa.ForeignKeyConstraint(["outage_id"], ["outage.id"], name=op.f("fk_event_action_outage_id_outage")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_action")),
    )
    with op.batch_alter_table("event_action", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_event_action_meter_event_id"), ["meter_event_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_event_action_outage_id"), ["outage_id"], unique=False)

    op.create_table(
        "tamper_flag",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("meter_id", sa.Integer(), nullable=False),
        sa.Column("service_point_id", sa.Integer(), nullable=True),
        sa.Column("episode_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        _at("from_at"),
        _at("to_at", True),
        sa.Column("valid", sa.Boolean(), nullable=False),
        _at("created_at"),
        sa.ForeignKeyConstraint(["meter_id"], ["meter.id"], name=op.f("fk_tamper_flag_meter_id_meter")),
        sa.ForeignKeyConstraint(
            ["service_point_id"],
            ["service_point.id"],
            name=op.f("fk_tamper_flag_service_point_id_service_point"),
        ),
        sa.ForeignKeyConstraint(
            ["episode_id"], ["event_episode.id"], name=op.f("fk_tamper_flag_episode_id_event_episode")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tamper_flag")),
        sa.UniqueConstraint("episode_id", name=op.f("uq_tamper_flag_episode_id")),
    )
    with op.batch_alter_table("tamper_flag", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tamper_flag_meter_id"), ["meter_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_tamper_flag_service_point_id"), ["service_point_id"], unique=False
        )

    op.create_table(
        "load_violation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("meter_id", sa.Integer(), nullable=False),
        sa.Column("service_point_id", sa.Integer(), nullable=True),
        sa.Column("service_agreement_id", sa.Integer(), nullable=True),
        _at("at"),
        sa.Column("demand_kw", sa.BigInteger(), nullable=True),
        sa.Column("sanctioned_kw", sa.BigInteger(), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("meter_event_id", sa.Integer(), nullable=True),
        _at("created_at"),
        sa.ForeignKeyConstraint(["meter_id"], ["meter.id"], name=op.f("fk_load_violation_meter_id_meter")),
        sa.ForeignKeyConstraint(
            ["service_point_id"],
            ["service_point.id"],
            name=op.f("fk_load_violation_service_point_id_service_point"),
        ),
        sa.ForeignKeyConstraint(
            ["service_agreement_id"],
            ["service_agreement.id"],
            name=op.f("fk_load_violation_service_agreement_id_service_agreement"),
        ),
        sa.ForeignKeyConstraint(
            ["meter_event_id"], ["meter_event.id"], name=op.f("fk_load_violation_meter_event_id_meter_event")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_load_violation")),
        sa.UniqueConstraint("meter_id", "at", "source", name=op.f("uq_load_violation_meter_id_at_source")),
    )
    with op.batch_alter_table("load_violation", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_load_violation_service_point_id"), ["service_point_id"], unique=False
        )

    op.create_table(
        "work_order",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(length=20), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("meter_id", sa.Integer(), nullable=True),
        sa.Column("service_point_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("priority", sa.String(length=8), nullable=False),
        _at("created_at"),
        _at("due_at", True),
        sa.Column("assigned_to", sa.String(length=100), nullable=False),
        _at("assigned_at", True),
        _at("started_at", True),
        _at("finished_at", True),
        sa.Column("outcome", sa.String(length=200), nullable=False),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["meter_id"], ["meter.id"], name=op.f("fk_work_order_meter_id_meter")),
        sa.ForeignKeyConstraint(
            ["service_point_id"],
            ["service_point.id"],
            name=op.f("fk_work_order_service_point_id_service_point"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_work_order")),
        sa.UniqueConstraint("number", name=op.f("uq_work_order_number")),
        sa.UniqueConstraint("kind", "source", name=op.f("uq_work_order_kind_source")),
    )
    with op.batch_alter_table("work_order", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_work_order_meter_id"), ["meter_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_work_order_service_point_id"), ["service_point_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_work_order_status"), ["status"], unique=False)


def downgrade() -> None:
    for table in ("work_order", "load_violation", "tamper_flag", "event_action", "event_episode", "outage"):
        op.drop_table(table)
    op.drop_table("event_routing_state")
