"""What ``edge-agent run`` imports: every module stays in the daemon's RSS for as long as it
runs (bench/daemon_footprint.py), so the CLI's drawing library and the enrollment crypto
are imported only by the commands that use them.  (pydantic-settings is the daemon's too:
it reads the ``EDGE_…`` variables.)"""

from __future__ import annotations

import json
import subprocess
import sys

# RSS each would add: rich ~2.4 MB, cryptography ~8 MB.
NOT_FOR_THE_DAEMON = ("rich", "cryptography")


def _modules_after(code: str) -> set[str]:
    out = subprocess.check_output(
        [sys.executable, "-c", f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"], text=True
    )
    return set(json.loads(out.splitlines()[-1]))


def test_the_daemon_and_the_cli_app_import_none_of_the_heavy_extras() -> None:
    modules = _modules_after("import edge_agent.cli.app, edge_agent.daemon.main")
    assert "edge_agent.daemon.main" in modules
    heavy = sorted(m for m in modules if m.split(".")[0] in NOT_FOR_THE_DAEMON)
    assert heavy == [], f"imported at start-up of `edge-agent run`: {heavy[:10]}"


def test_a_command_that_draws_still_gets_rich() -> None:
    modules = _modules_after("from edge_agent.cli.common import console\nconsole.print('x', end='')\nprint()")
    assert "rich.console" in modules
