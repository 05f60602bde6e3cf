"""outbox: the trace context of each event, so that the relay continues the upload's trace

Revision ID: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    op.add_column("outbox", sa.Column("trace_context", sa.String(64)))


def downgrade() -> None:
    op.drop_column("outbox", "trace_context")
