"""The ingest's HTTP API (FastAPI)."""
