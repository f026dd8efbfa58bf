"""``edge-agent status`` finds the state directory even when the config file is broken."""

from __future__ import annotations

from pathlib import Path

from edge_agent.cli.state_dir import state_dir_of


def test_the_file_then_the_environment_relative_to_the_file(tmp_path: Path) -> None:
    config = tmp_path / "edge-agent.toml"
    config.write_text('[storage]\nstate_dir = "var/state"\nmax_bytes = "not a size"\n[bogus]\n')
    assert state_dir_of(config, {}) == tmp_path / "var" / "state"
    assert state_dir_of(config, {"EDGE_STORAGE__STATE_DIR": "/srv/x"}) == Path("/srv/x")
    assert state_dir_of(config, {"edge_storage__state_dir": "rel"}) == tmp_path / "rel"


def test_garbage_missing_or_unreadable_falls_back_to_the_default(tmp_path: Path) -> None:
    default = Path("/var/lib/edge-agent")
    garbage = tmp_path / "garbage.toml"
    garbage.write_bytes(b"[[sensors\n\xff\xfe")
    wrong_type = tmp_path / "wrong.toml"
    wrong_type.write_text("storage = 3\n")
    assert state_dir_of(garbage, {}) == default
    assert state_dir_of(wrong_type, {}) == default
    assert state_dir_of(tmp_path / "missing.toml", {}) == default
    assert state_dir_of(tmp_path, {}) == default  # a directory
