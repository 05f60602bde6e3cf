"""create storages

Revision ID: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "storages",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("storage_type", sa.String(16), nullable=False),
        sa.Column("bucket", sa.String(63), nullable=False),
        sa.Column("path", sa.String(1024), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.UniqueConstraint("bucket", "path", name="uq_storages_bucket_path"),
        sa.CheckConstraint("storage_type IN ('STAGING', 'PERMANENT')", name="ck_storages_type"),
    )


def downgrade() -> None:
    op.drop_table("storages")
