"""``devices.dropped_events``: events a device made and never committed (they have no seq),
summed from its ``gap`` events with reason ``not_committed`` (docs/PROTOCOL.md).  Before
this, such a gap's count was added to ``evicted_events``; those sums are left as they are.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "devices",
        sa.Column(
            "dropped_events",
            sa.BigInteger,
            nullable=False,
            server_default="0",
            comment="Sum of its not_committed gap reports (events never given a seq)",
        ),
    )


def downgrade() -> None:
    op.drop_column("devices", "dropped_events")
