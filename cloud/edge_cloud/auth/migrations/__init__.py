"""Alembic migrations of the auth database (``edge-auth db upgrade``; also run by ``serve``)."""
