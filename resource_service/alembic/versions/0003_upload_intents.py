"""upload intents: an upload's object is known before its row

Revision ID: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.create_table(
        "upload_intents",
        sa.Column("resource_id", sa.BigInteger, primary_key=True),
        sa.Column("bucket", sa.String(63), nullable=False),
        sa.Column("key", sa.String(1024), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_upload_intents_expires_at", "upload_intents", ["expires_at"])


def downgrade() -> None:
    op.drop_table("upload_intents")
