"""The auth service's HTTP API (FastAPI): ``create_app(service)``."""
