"""outbox events carry a payload; deleted resources keep their events

A `resource.deleted` event names the objects to remove and outlives its resource's row, so the
outbox no longer references `resources` (its cascade would delete the very event).

Revision ID: 0002
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.drop_constraint("outbox_resource_id_fkey", "outbox", type_="foreignkey")
    op.add_column("outbox", sa.Column("payload", JSONB, nullable=True))


def downgrade() -> None:
    op.drop_column("outbox", "payload")
    op.execute("DELETE FROM outbox WHERE resource_id NOT IN (SELECT id FROM resources)")
    op.create_foreign_key(
        "outbox_resource_id_fkey",
        "outbox",
        "resources",
        ["resource_id"],
        ["id"],
        ondelete="CASCADE",
    )
