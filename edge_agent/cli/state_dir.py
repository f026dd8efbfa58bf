"""Where a daemon started with a config file keeps its state, even if that file is now invalid.

``edge-agent status`` only needs the state directory (the status socket is in it).  The
file on disk may have been edited since the daemon started: a rejected SIGHUP leaves the
daemon running its last valid configuration while the file is broken, which is exactly
when an operator asks for the status.  So this reads ``storage.state_dir`` leniently,
with the same precedence and path rules as :func:`edge_agent.settings.load_settings`:
``EDGE_STORAGE__STATE_DIR``, then the file, then the default; relative to the file's folder.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path

from edge_agent.settings import ENV_PREFIX, StorageSettings

ENV_VAR = f"{ENV_PREFIX}STORAGE__STATE_DIR"


def state_dir_of(config: Path, environ: Mapping[str, str] | None = None) -> Path:
    """The state directory ``config`` (plus the environment) names; never raises."""
    env = os.environ if environ is None else environ
    # pydantic-settings matches environment names case-insensitively.
    raw = next((v for k, v in env.items() if k.upper() == ENV_VAR and v), None) or _from_file(config)
    default = StorageSettings.model_fields["state_dir"].default
    path = Path(raw) if raw else Path(default)
    return path if path.is_absolute() else (config.parent / path).resolve()


def _from_file(config: Path) -> str | None:
    try:
        with config.open("rb") as f:
            data = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return None
    storage = data.get("storage")
    value = storage.get("state_dir") if isinstance(storage, dict) else None
    return value if isinstance(value, str) and value else None
