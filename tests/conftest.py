"""Shared fixtures.  Tests that need an external service (Mosquitto, PostgreSQL) use
:func:`require_binary` / a fixture that skips with a reason, except under CI
(``CI=true``), where a missing service is a failure, not a skip."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = REPO / "config" / "edge-agent.toml"


def under_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require_binary(name: str, why: str) -> str:
    """Path of ``name``, or skip (fail under CI) with a reason."""
    path = shutil.which(name) or next(
        (str(p) for p in (Path("/usr/sbin") / name, Path("/usr/local/sbin") / name) if p.exists()), None
    )
    if path is None:
        message = f"{name} is not installed; {why}"
        if under_ci():
            pytest.fail(f"under CI every dependency must be present: {message}")
        pytest.skip(message)
    return path
