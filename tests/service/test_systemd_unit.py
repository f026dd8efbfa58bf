"""The shipped unit passes ``systemd-analyze verify`` and says what the issue asks."""

from __future__ import annotations

import configparser
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO, require_binary

UNIT = REPO / "systemd" / "edge-agent.service"


def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = require_binary("systemd-analyze", "it checks the systemd unit (apt install systemd)")
    # verify wants ExecStart to exist: point it at this checkout's edge-agent.
    executable = Path(sys.executable).parent / "edge-agent"
    assert executable.exists(), executable
    rendered = tmp_path / "edge-agent.service"
    rendered.write_text(UNIT.read_text().replace("/opt/edge-agent/bin/edge-agent", str(executable)))
    result = subprocess.run(
        [analyze, "verify", "--man=no", str(rendered)], capture_output=True, text=True, timeout=60
    )
    # verify exits 0 even for unknown keys or bad values; it only warns: no warning is allowed.
    problems = [line for line in (result.stdout + result.stderr).splitlines() if "edge-agent.service" in line]
    assert result.returncode == 0 and problems == [], result.stdout + result.stderr


def test_unit_has_the_service_contract() -> None:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text())
    service = parser["Service"]
    assert service["Type"] == "notify" and int(service["WatchdogSec"]) > 0
    assert service["Restart"] == "on-failure" and service["RestartPreventExitStatus"] == "78"
    assert service["StateDirectory"] == service["ConfigurationDirectory"] == "edge-agent"
    assert service["User"] == "edge-agent" and service["SupplementaryGroups"] == "dialout"
    for key, value in {
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "NoNewPrivileges": "yes",
        "PrivateTmp": "yes",
        "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
        "DevicePolicy": "closed",
    }.items():
        assert service[key] == value, key
    devices = [line for line in UNIT.read_text().splitlines() if line.startswith("DeviceAllow=")]
    assert "DeviceAllow=char-i2c rw" in devices and "DeviceAllow=char-ttyAMA rw" in devices
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"


def _unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text())
    return parser


def test_an_offline_device_starts_without_waiting_for_the_network() -> None:
    unit = _unit()["Unit"]
    for key in ("After", "Wants", "Requires"):
        assert "network-online.target" not in unit.get(key, ""), key
    assert "network.target" in unit["After"]  # the clean disconnect happens before the network goes


def test_no_supplementary_group_that_plain_debian_lacks() -> None:
    # Debian's base-passwd always has dialout; i2c exists only where something created it.
    assert set(_unit()["Service"]["SupplementaryGroups"].split()) <= {"dialout"}


def test_a_wedged_writer_or_sensor_is_restarted_within_a_minute_and_a_half() -> None:
    from edge_agent.service import stages

    watchdog = int(_unit()["Service"]["WatchdogSec"])
    assert stages.WRITER_BUDGET_S + watchdog <= 90
    # A 10 s sensor with the default 5 s timeout.
    sensor_budget = 2 * 10 + 5 + stages.REBUILD_ALLOWANCE_S + stages.MARGIN_S
    assert sensor_budget + watchdog <= 90
