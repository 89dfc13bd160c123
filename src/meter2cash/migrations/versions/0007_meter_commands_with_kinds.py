"""meter commands with kinds, groups, idempotency keys and an audit trail

``meter_command`` replaces ``connection_command``: every command a meter is asked to carry out
(connect, disconnect, reads, re-acquisition, time sync, configuration, credit, payment mode,
firmware), for one meter or a group, with its attempts, deadline, idempotency key, the head-end's
answer and the relay state read back; ``meter_command_step`` is each command's audit trail. The
connection commands move over with their ids and times (a reconnect is a ``connect``), each for
the meter installed at its agreement's service point when it was requested, with one step per
time it recorded.

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "meter_command",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("meter_id", sa.Integer(), nullable=True),
        sa.Column("service_agreement_id", sa.Integer(), nullable=True),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column("is_group", sa.Boolean(), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=False),
        sa.Column("requested_by", sa.String(length=100), nullable=False),
        sa.Column("idempotency_key", sa.String(length=100), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", _TS, nullable=True),
        sa.Column("deadline", _TS, nullable=True),
        sa.Column("message_id", sa.String(length=100), nullable=True),
        sa.Column("requested_at", _TS, nullable=False),
        sa.Column("sent_at", _TS, nullable=True),
        sa.Column("acknowledged_at", _TS, nullable=True),
        sa.Column("finished_at", _TS, nullable=True),
        sa.Column("detail", sa.String(length=200), nullable=False),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.Column("relay_state", sa.String(length=16), nullable=True),
        sa.Column("relay_confirmed_at", _TS, nullable=True),
        sa.ForeignKeyConstraint(["meter_id"], ["meter.id"], name=op.f("fk_meter_command_meter_id_meter")),
        sa.ForeignKeyConstraint(
            ["parent_id"], ["meter_command.id"], name=op.f("fk_meter_command_parent_id_meter_command")
        ),
        sa.ForeignKeyConstraint(
            ["service_agreement_id"],
            ["service_agreement.id"],
            name=op.f("fk_meter_command_service_agreement_id_service_agreement"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_meter_command")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_meter_command_idempotency_key")),
    )
    with op.batch_alter_table("meter_command", schema=None) as batch_op:
        for col in ("kind", "meter_id", "service_agreement_id", "parent_id", "status", "message_id"):
            batch_op.create_index(batch_op.f(f"ix_meter_command_{col}"), [col], unique=False)
    op.create_table(
        "meter_command_step",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("command_id", sa.Integer(), nullable=False),
        sa.Column("at", _TS, nullable=False),
        sa.Column("from_status", sa.String(length=16), nullable=True),
        sa.Column("to_status", sa.String(length=16), nullable=False),
        sa.Column("by", sa.String(length=100), nullable=False),
        sa.Column("detail", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["command_id"], ["meter_command.id"], name=op.f("fk_meter_command_step_command_id_meter_command")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_meter_command_step")),
    )
    with op.batch_alter_table("meter_command_step", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_meter_command_step_command_id"), ["command_id"], unique=False)

    op.execute(
        """
        INSERT INTO meter_command (id, kind, meter_id, service_agreement_id, parent_id, is_group,
            params, reason, requested_by, idempotency_key, status, attempts, next_attempt_at, deadline,
            message_id, requested_at, sent_at, acknowledged_at, finished_at, detail, result,
            relay_state, relay_confirmed_at)
        SELECT c.id,
            CASE WHEN c.action = 'reconnect' THEN 'connect' ELSE c.action END,
            (SELECT i.meter_id FROM installation i JOIN service_agreement sa
                ON sa.service_point_id = i.service_point_id
              WHERE sa.id = c.service_agreement_id AND i.installed_at <= c.requested_at
                AND (i.removed_at IS NULL OR i.removed_at > c.requested_at)
              ORDER BY i.installed_at DESC LIMIT 1),
            c.service_agreement_id, NULL, false, '{}', c.reason, '', NULL, c.status,
            CASE WHEN c.sent_at IS NULL THEN 0 ELSE 1 END, NULL, NULL, NULL, c.requested_at,
            c.sent_at, c.acknowledged_at, c.finished_at, c.detail, '{}', NULL, NULL
        FROM connection_command c
        """
    )
    for column, status in (
        ("requested_at", "'requested'"),
        ("sent_at", "'sent'"),
        ("acknowledged_at", "'acknowledged'"),
        ("finished_at", "c.status"),
    ):
        op.execute(
            f"""
            INSERT INTO meter_command_step (command_id, at, from_status, to_status, by, detail)
            SELECT c.id, c.{column}, NULL, {status}, 'migration', ''
            FROM connection_command c WHERE c.{column} IS NOT NULL
            """
        )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "SELECT setval(pg_get_serial_sequence('meter_command', 'id'), "
            "COALESCE((SELECT MAX(id) FROM meter_command), 0) + 1, false)"
        )
    op.drop_table("connection_command")


def downgrade() -> None:
    op.create_table(
        "connection_command",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("service_agreement_id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("requested_at", _TS, nullable=False),
        sa.Column("sent_at", _TS, nullable=True),
        sa.Column("acknowledged_at", _TS, nullable=True),
        sa.Column("finished_at", _TS, nullable=True),
        sa.Column("detail", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["service_agreement_id"],
            ["service_agreement.id"],
            name=op.f("fk_connection_command_service_agreement_id_service_agreement"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_connection_command")),
    )
    with op.batch_alter_table("connection_command", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_connection_command_service_agreement_id"), ["service_agreement_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_connection_command_status"), ["status"], unique=False)
    op.execute(
        """
        INSERT INTO connection_command (id, service_agreement_id, action, reason, status, requested_at,
            sent_at, acknowledged_at, finished_at, detail)
        SELECT id, service_agreement_id, CASE WHEN kind = 'connect' THEN 'reconnect' ELSE kind END,
            reason, status, requested_at, sent_at, acknowledged_at, finished_at, detail
        FROM meter_command
        WHERE kind IN ('connect', 'disconnect') AND service_agreement_id IS NOT NULL AND NOT is_group
        """
    )
    op.drop_table("meter_command_step")
    op.drop_table("meter_command")
