"""Service certificates: every one ``edge-auth service-cert`` issues, so that one can be
revoked (the service CRL) without replacing the service CA.

Revision ID: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "service_certificates",
        sa.Column("serial", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, index=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("issued_at", sa.BigInteger, nullable=False),
        sa.Column("not_after", sa.BigInteger, nullable=False),
        sa.Column("revoked_at", sa.BigInteger),
    )


def downgrade() -> None:
    op.drop_table("service_certificates")
