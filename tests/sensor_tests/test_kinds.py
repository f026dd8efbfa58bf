"""Every test kind passes on a healthy simulated sensor and fails with the matching fault injected."""

from __future__ import annotations

import asyncio
import errno
from typing import Any

import pytest

from edge_agent.calibration import ActiveCalibrations
from edge_agent.calibration.store import CalibrationRecord
from edge_agent.sensor_tests.result import TestResult
from edge_drivers.bme280 import Reg
from edge_drivers.sim import BusFault
from tests.sensor_tests.helpers import Bench, bench, only


def run(b: Bench, test: dict[str, Any]) -> TestResult:
    runner = b.runner([{"name": "t", **test}])
    return asyncio.run(runner.run(only(runner), "cli"))


RANGE = {
    "sensor": "climate",
    "kind": "range",
    "limits": {"temperature_c": [-10, 50], "pressure_pa": [80000, 110000]},
}
NOISE = {
    "sensor": "climate",
    "kind": "noise",
    "quantity": "temperature_c",
    "samples": 10,
    "spacing": 1,
    "max_std": 0.1,
}
STUCK = {
    "sensor": "cabinet",
    "kind": "stuck",
    "quantity": "relative_humidity_pct",
    "samples": 5,
    "spacing": 1,
}
RATE = {
    "sensor": "climate",
    "kind": "rate",
    "quantity": "temperature_c",
    "samples": 8,
    "spacing": 1,
    "max_rate": 1.0,
}
AGREE = {
    "sensor": "climate",
    "kind": "agreement",
    "quantity": "temperature_c",
    "other": "cabinet",
    "tolerance": 0.5,
}


def test_range_passes_then_fails_on_spikes() -> None:
    with bench() as b:
        ok = run(b, RANGE)
        assert ok.status == "pass", ok.detail
        assert set(ok.measured) == {"temperature_c", "pressure_pa"}
        assert ok.limits == {"temperature_c": [-10, 50], "pressure_pa": [80000, 110000]}
        b.sim("climate").signals["temperature_c"].set_faults(spike_probability=1.0, spike_size=80.0)
        bad = run(b, RANGE)
        assert bad.status == "fail"
        assert "temperature_c" in bad.detail and "outside [-10, 50]" in bad.detail


def test_noise_passes_then_fails_on_noise() -> None:
    with bench() as b:
        ok = run(b, NOISE)
        assert ok.status == "pass", ok.detail
        assert ok.measured["samples"] == 10 and float(ok.measured["std"] or 0) < 0.1
        b.sim("climate").signals["temperature_c"].set_faults(noise=2.0)
        bad = run(b, NOISE)
        assert bad.status == "fail", bad.detail
        assert float(bad.measured["std"] or 0) > 0.1


def test_stuck_passes_then_fails_on_a_frozen_value() -> None:
    with bench() as b:
        ok = run(b, STUCK)
        assert ok.status == "pass", ok.detail
        b.sim("cabinet").signals["relative_humidity_pct"].set_faults(stuck=True)
        bad = run(b, STUCK)
        assert bad.status == "fail"
        assert "did not change at all" in bad.detail and bad.measured["change"] == 0


def test_rate_passes_then_fails_on_spikes() -> None:
    with bench() as b:
        ok = run(b, RATE)
        assert ok.status == "pass", ok.detail
        b.sim("climate").signals["temperature_c"].set_faults(spike_probability=0.5, spike_size=10.0)
        bad = run(b, RATE)
        assert bad.status == "fail", bad.detail
        assert float(bad.measured["max_rate_per_s"] or 0) > 1.0


def test_agreement_passes_in_shared_air_then_fails_on_drift() -> None:
    with bench() as b:
        ok = run(b, AGREE)
        assert ok.status == "pass", ok.detail
        b.sim("cabinet").signals["temperature_c"].set_faults(drift_per_s=0.01)
        b.clock.advance(300)  # 3 °C of drift
        bad = run(b, AGREE)
        assert bad.status == "fail", bad.detail
        assert abs(float(bad.measured["difference"] or 0)) > 2.5


def test_agreement_uses_calibrated_values() -> None:
    with bench() as b:
        b.sim("cabinet").signals["temperature_c"].set_faults(drift_per_s=0.01)
        b.clock.advance(300)
        assert run(b, AGREE).status == "fail"
        offset = -(
            b.sim("cabinet").signals["temperature_c"].sample()
            - b.sim("climate").signals["temperature_c"].true_value()
        )
        b.calibrations.replace([_record("cabinet", "temperature_c", offset=offset)])
        assert run(b, AGREE).status == "pass"


def test_self_test_sht3x_dead_heater_fails() -> None:
    with bench() as b:
        ok = run(b, {"sensor": "cabinet", "kind": "self_test"})
        assert ok.status == "pass", ok.detail
        assert float(ok.measured["delta_c"] or 0) > 0.5
        b.sim("cabinet").dead_heater = True
        bad = run(b, {"sensor": "cabinet", "kind": "self_test"})
        assert bad.status == "fail"
        assert "temperature rose" in bad.detail


def test_self_test_bme280_wrong_chip_id_fails() -> None:
    with bench() as b:
        assert run(b, {"sensor": "climate", "kind": "self_test"}).status == "pass"
        b.sim("climate").registers[Reg.CHIP_ID] = 0x58
        bad = run(b, {"sensor": "climate", "kind": "self_test"})
        assert bad.status == "fail" and "chip id" in bad.detail


def test_self_test_ads1115_stuck_conversion_fails() -> None:
    with bench() as b:
        assert run(b, {"sensor": "analog", "kind": "self_test"}).status == "pass"
        b.sim("analog").stuck_busy = True
        bad = run(b, {"sensor": "analog", "kind": "self_test"})
        assert bad.status == "fail", bad.detail


def test_self_test_pms5003_frame_errors_fail() -> None:
    with bench(("dust",)) as b:
        ok = run(b, {"sensor": "dust", "kind": "self_test"})
        assert ok.status == "pass", ok.detail
        port = b.ports["dust"].driver.port
        port.device.corrupt_next = 3  # the next three frames fail their checksum
        bad = run(b, {"sensor": "dust", "kind": "self_test", "timeout": 60})
        assert bad.status == "fail", bad.detail
        assert "frame error rate" in bad.detail and float(bad.measured["checksum_errors"] or 0) >= 1


def _record(
    sensor: str,
    quantity: str,
    *,
    offset: float = 0.0,
    age_days: float = 1.0,
    expires_in_days: float | None = None,
) -> CalibrationRecord:
    now = 1_800_000_000.0
    return CalibrationRecord(
        id=7,
        sensor=sensor,
        quantity=quantity,
        action="calibrate",
        applies=True,
        method="offset",
        gain=1.0,
        offset=offset,
        created_at=now - age_days * 86400,
        calibrated_at=now - age_days * 86400,
        expires_at=None if expires_in_days is None else now + expires_in_days * 86400,
    )


DUE = {"sensor": "climate", "kind": "calibration_due", "max_age": "90d"}


@pytest.mark.parametrize(
    ("records", "status", "words"),
    [
        ([], "fail", "never been calibrated"),
        ([_record("climate", "temperature_c", age_days=10)], "pass", "10.0 days ago"),
        ([_record("climate", "temperature_c", age_days=100)], "fail", "100.0 days old"),
        (
            [_record("climate", "temperature_c", age_days=10, expires_in_days=-2)],
            "fail",
            "expired 2.0 days ago",
        ),
    ],
)
def test_calibration_due(records: list[CalibrationRecord], status: str, words: str) -> None:
    with bench(("climate",)) as b:
        b.calibrations = ActiveCalibrations(records)
        result = run(b, DUE)
        assert result.status == status
        assert words in result.detail


def test_driver_error_is_an_error_never_a_pass() -> None:
    with bench() as b:
        b.hardware.sim_bus.inject(0x76, BusFault(errno=errno.EIO, count=None))
        for test in (RANGE, NOISE, {"sensor": "climate", "kind": "self_test"}):
            result = run(b, test)
            assert result.status in ("error", "fail"), result
            assert result.status != "pass"
        assert run(b, RANGE).status == "error"
        assert "BusError" in run(b, NOISE).detail


def test_sensor_not_open_and_driver_bug_are_errors() -> None:
    with bench(("climate",)) as b:
        assert run(b, {"sensor": "cabinet", "kind": "self_test"}).status == "error"

        def broken() -> dict[str, float]:
            raise ZeroDivisionError("bug")

        b.ports["climate"].driver.read = broken
        result = run(b, RANGE)
        assert result.status == "error" and "ZeroDivisionError" in result.detail


def test_hung_driver_times_out_as_error() -> None:
    import threading

    with bench(("climate",)) as b:
        release = threading.Event()

        def hung() -> dict[str, float]:
            release.wait(5)
            return {"temperature_c": 20.0}

        b.ports["climate"].driver.read = hung
        result = run(b, {**RANGE, "limits": {"temperature_c": [0, 40]}, "timeout": 0.3})
        release.set()
        assert result.status == "error" and "did not finish" in result.detail


def test_missing_quantity_is_an_error() -> None:
    with bench(("analog",)) as b:
        result = run(
            b,
            {
                "sensor": "analog",
                "kind": "noise",
                "quantity": "ain3_voltage_v",
                "samples": 3,
                "spacing": 0,
                "max_std": 1,
            },
        )
        assert result.status == "error" and "did not report" in result.detail
