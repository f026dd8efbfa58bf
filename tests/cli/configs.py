"""The repository's default config with its state in a test's own folder."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import DEFAULT_CONFIG


def config_in(folder: Path) -> Path:
    """``folder/edge-agent.toml``: the default config, state in ``folder/state``."""
    folder.mkdir(parents=True, exist_ok=True)
    text = DEFAULT_CONFIG.read_text().replace('state_dir = "../state"', f'state_dir = "{folder / "state"}"')
    path = folder / "edge-agent.toml"
    path.write_text(text)
    return path
