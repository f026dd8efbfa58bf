"""Operators: ``tokens_after``, the Unix second before which the operator's access tokens
are refused (set when it is created, disabled, or its password changes).

Revision ID: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("operators") as batch:
        batch.add_column(sa.Column("tokens_after", sa.BigInteger, nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("operators") as batch:
        batch.drop_column("tokens_after")
