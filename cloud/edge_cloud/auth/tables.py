"""The auth database, as SQLAlchemy Core tables (the schema is made by the Alembic
migrations in ``migrations/``; keep both in step).

Times are integer Unix seconds (UTC): the same on SQLite and PostgreSQL, compared in SQL.
Secrets are never stored: enrollment tokens, refresh tokens and API keys as SHA-256 of
the random value (they have 256 bits of entropy, so a slow hash adds nothing), operator
passwords as argon2id, device passwords as Mosquitto's ``$7$`` PBKDF2-SHA512.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

operators = sa.Table(
    "operators",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("username", sa.String(64), nullable=False, unique=True),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("scopes", sa.String(255), nullable=False),
    sa.Column("disabled", sa.Boolean, nullable=False, default=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    # Access tokens issued (iat) before this second are refused: set at creation (a
    # re-created name does not inherit the old tokens), disabling and password changes.
    sa.Column("tokens_after", sa.BigInteger, nullable=False, server_default="0"),
)

refresh_tokens = sa.Table(
    "refresh_tokens",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("family_id", sa.String(36), nullable=False, index=True),
    sa.Column(
        "operator_id", sa.String(36), sa.ForeignKey("operators.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("scopes", sa.String(255), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("expires_at", sa.BigInteger, nullable=False),
    sa.Column("used_at", sa.BigInteger),
    sa.Column("revoked_at", sa.BigInteger),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("secret_hash", sa.String(64), nullable=False),
    sa.Column("scopes", sa.String(255), nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("expires_at", sa.BigInteger),
    sa.Column("revoked_at", sa.BigInteger),
    sa.Column("last_used_at", sa.BigInteger),
)

devices = sa.Table(
    "devices",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    # pending (created, not enrolled) | active | disabled | revoked
    sa.Column("status", sa.String(16), nullable=False),
    # cert | password; null until enrolled
    sa.Column("auth_mode", sa.String(16)),
    sa.Column("password_hash", sa.String(255)),
    sa.Column("description", sa.String(255)),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("enrolled_at", sa.BigInteger),
    sa.Column("changed_at", sa.BigInteger, nullable=False),
)

certificates = sa.Table(
    "certificates",
    metadata,
    sa.Column("serial", sa.String(40), primary_key=True),  # hex
    sa.Column(
        "device_id",
        sa.String(64),
        sa.ForeignKey("devices.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("fingerprint", sa.String(64), nullable=False),  # SHA-256 of the DER, hex
    sa.Column("issued_at", sa.BigInteger, nullable=False),
    sa.Column("not_after", sa.BigInteger, nullable=False),
    # Set when a renewal replaced it: still valid for TLS until it expires, but no longer
    # the one that may ask for the next renewal.
    sa.Column("superseded_at", sa.BigInteger),
    sa.Column("revoked_at", sa.BigInteger),
)

enrollment_tokens = sa.Table(
    "enrollment_tokens",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("kind", sa.String(16), nullable=False),  # device | claim
    sa.Column("device_id", sa.String(64), sa.ForeignKey("devices.id", ondelete="CASCADE")),
    sa.Column("uses_left", sa.Integer, nullable=False),
    sa.Column("max_uses", sa.Integer, nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("expires_at", sa.BigInteger, nullable=False),
    sa.Column("revoked_at", sa.BigInteger),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.BigInteger, nullable=False, index=True),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("target", sa.String(128)),
    sa.Column("address", sa.String(64)),
    sa.Column("detail", sa.Text),
)

service_certificates = sa.Table(
    "service_certificates",
    metadata,
    # Every certificate ``edge-auth service-cert`` issued (the service CA's), so that one
    # can be listed and revoked on its own: a leaked key must not need a new service CA.
    sa.Column("serial", sa.String(40), primary_key=True),  # hex
    sa.Column("name", sa.String(64), nullable=False, index=True),  # the CN: the ACL's user name
    sa.Column("fingerprint", sa.String(64), nullable=False),  # SHA-256 of the DER, hex
    sa.Column("issued_at", sa.BigInteger, nullable=False),
    sa.Column("not_after", sa.BigInteger, nullable=False),
    sa.Column("revoked_at", sa.BigInteger),
)
