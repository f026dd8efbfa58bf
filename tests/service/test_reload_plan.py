"""Which sensors a reload restarts, and which sections wait for a restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.errors import ConfigError
from edge_agent.service.reload import plan_reload
from edge_agent.service.sensor_set import diff_sensors
from edge_agent.settings import SensorSettings, load_settings
from tests.conftest import DEFAULT_CONFIG


def sensor(name: str, **kw: object) -> SensorSettings:
    return SensorSettings(name=name, driver="bme280", bus="sim", address=0x76, **kw)  # type: ignore[arg-type]


def test_diff_by_name_disabled_counts_as_absent() -> None:
    old = [sensor("a"), sensor("b"), sensor("c"), sensor("d", enabled=False)]
    new = [sensor("a"), sensor("b", interval=2.0), sensor("d"), sensor("e", enabled=False)]
    diff = diff_sensors(old, new)
    assert (diff.added, diff.removed, diff.changed) == (["d"], ["c"], ["b"])
    assert str(diff) == "added d; removed c; changed b"
    assert not diff_sensors(old, old)


def test_plan_keeps_restart_only_sections(tmp_path: Path) -> None:
    running = load_settings(DEFAULT_CONFIG, environ={})
    text = DEFAULT_CONFIG.read_text().replace("port = 1883", "port = 1884").replace('"lab bench"', '"roof"')
    changed = tmp_path / "edge-agent.toml"
    text = text.replace('format = "text"', 'format = "json"')
    changed.write_text(text.replace('state_dir = "../state"', f'state_dir = "{running.storage.state_dir}"'))
    plan = plan_reload(running, load_settings(changed, environ={}))
    assert plan.needs_restart == ["device"]
    assert plan.mqtt_changed and plan.settings.mqtt.port == 1884, "the uplink reconnects"
    assert plan.settings.device == running.device
    assert plan.settings.logging.format == "json" and not plan.health_changed


@pytest.mark.parametrize("listen", ["9108", "localhost", "host:port", ":9108", "1.2.3.4:70000"])
def test_bad_metrics_listen_is_a_config_error(tmp_path: Path, listen: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f'[device]\nid = "x"\n[metrics]\nlisten = "{listen}"\n')
    with pytest.raises(ConfigError) as err:
        load_settings(path, environ={})
    assert "metrics.listen" in str(err.value) and "HOST:PORT" in str(err.value)


def test_a_restarted_serial_sensor_gets_its_port_anew() -> None:
    import os

    from edge_agent.sampling.hardware import Hardware
    from edge_agent.sampling.registry import load_registry

    controller, device = os.openpty()  # a real tty for pyserial to open
    path = os.ttyname(device)
    hardware = Hardware(load_registry())
    try:
        spec = hardware.registry.get("pms5003").spec  # type: ignore[union-attr]
        first = hardware.serial(spec, path, 9600)
        second = hardware.serial(spec, path, 9600)  # the sensor restarted by a reload
        assert not first.is_open and second.is_open  # type: ignore[attr-defined]
    finally:
        hardware.close()
        os.close(controller)
        os.close(device)
    assert not second.is_open  # type: ignore[attr-defined]
