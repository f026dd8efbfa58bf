"""The operators' dashboard, served by the ingest under ``/ui/`` (docs/INGEST.md, "Dashboard").

``routes`` (the pages), ``views`` (what each shows, from the API's queries), ``session``
(login through the auth service; the token in an HttpOnly cookie); ``templates/`` and
``static/`` (the vendored uPlot with its licence, our script and style).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from edge_cloud.ingest.dashboard.routes import router

STATIC = Path(__file__).with_name("static")


def mount(app: FastAPI) -> None:
    """Add the dashboard's pages and static files to the ingest's app."""
    app.include_router(router)
    app.mount("/ui/static", StaticFiles(directory=STATIC), name="dashboard-static")
