"""``edge-agent status`` without ``--config``: it finds a daemon started from the source
tree's config, or says which sockets it asked; ``--json`` is always JSON."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_agent.service.status_server import StatusServer, status_socket
from edge_agent.settings import load_settings
from tests.cli.narrow import config_in, run
from tests.cli.test_status_render import snapshot


@pytest.fixture
def checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder like the source tree: config/edge-agent.toml, state in ./state."""
    (tmp_path / "config").mkdir()
    config = config_in(tmp_path)
    config.rename(tmp_path / "config" / "edge-agent.toml")
    monkeypatch.chdir(tmp_path)
    return tmp_path / "config" / "edge-agent.toml"


@pytest.fixture
def daemon(checkout: Path) -> Iterator[None]:
    """The daemon's own status server on the checkout's socket, on a loop of its own."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    path = status_socket(load_settings(checkout).storage.state_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    server = StatusServer(path, lambda: {**snapshot("", ""), "device_id": "from-the-checkout"})
    assert asyncio.run_coroutine_threadsafe(server.start(), loop).result(10)
    yield
    asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


def test_status_without_config_finds_the_daemon_of_the_checkout(daemon: None) -> None:
    result = run("status")
    assert result.exit_code == 0, result.output
    assert "from-the-checkout" in result.stdout


def test_status_says_which_sockets_it_asked_and_json_stays_json(checkout: Path) -> None:
    result = run("status")
    assert result.exit_code == 3
    said = " ".join(result.stderr.split())
    assert "/var/lib/edge-agent/status.sock: nothing answers" in said
    assert f"{checkout.parent.parent / 'state' / 'status.sock'}: nothing answers" in said
    assert "--config FILE" in said
    as_json = run("status", "--json")
    assert as_json.exit_code == 3
    answer = json.loads(as_json.stdout)
    assert answer["running"] is False and len(answer["tried"]) == 2


def test_an_explicit_config_is_the_only_one_asked(checkout: Path, tmp_path: Path) -> None:
    (tmp_path / "other").mkdir()
    other = config_in(tmp_path / "other")
    answer = json.loads(run("status", "--json", "--config", str(other)).stdout)
    assert [t["config"] for t in answer["tried"]] == [str(other)]
