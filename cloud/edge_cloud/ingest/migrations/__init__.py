"""Alembic migrations of the ingest database (``edge-ingest db upgrade``; also run by ``serve``)."""
