"""What the calibration and sensor-test commands share: the calibration database, opened sensors."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from typing import NoReturn

import typer

from edge_agent.calibration import (
    CALIBRATION_FILE,
    ActiveCalibrations,
    CalibrationStore,
    CalibrationStoreError,
)
from edge_agent.cli.common import EX_USAGE, err_console, escape
from edge_agent.errors import HardwareOpenError
from edge_agent.sampling.hardware import Hardware
from edge_agent.sampling.registry import load_registry
from edge_agent.sampling.worker import SensorAccess
from edge_agent.settings import SensorSettings, Settings
from edge_drivers.api import DriverError


def fail(message: str, code: int = EX_USAGE) -> NoReturn:
    err_console.print(f"[red]{escape(message)}[/]", highlight=False)  # "[certificate]" is text, not a style
    raise typer.Exit(code)


@contextlib.contextmanager
def calibration_store(settings: Settings) -> Iterator[CalibrationStore]:
    """The device's calibration database (created on first use), or exit with the reason."""
    try:
        store = CalibrationStore.open(settings.storage.state_dir / CALIBRATION_FILE)
    except CalibrationStoreError as exc:
        fail(str(exc), 1)
    try:
        yield store
    finally:
        store.close()


def active_calibrations(settings: Settings) -> ActiveCalibrations:
    """The corrections in effect; none when the device has no calibration database yet."""
    if not (settings.storage.state_dir / CALIBRATION_FILE).exists():
        return ActiveCalibrations()
    with calibration_store(settings) as store:
        return ActiveCalibrations(store.current())


def login_name() -> str | None:
    """Who is logged in, for the history's "by" column (None when the system cannot say)."""
    import getpass

    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no USER/LOGNAME and no passwd entry (a bare container)
        return None


def known_sensor(settings: Settings, name: str) -> SensorSettings:
    sensor = settings.sensor(name)
    if sensor is None:
        fail(f"unknown sensor {name!r}; configured: {', '.join(s.name for s in settings.sensors) or 'none'}")
    return sensor


@contextlib.contextmanager
def opened_sensors(
    sensors: list[SensorSettings],
) -> Iterator[tuple[dict[str, SensorAccess], dict[str, str], Hardware]]:
    """Open the sensors (as ``edge-agent read`` does); each on its own worker thread.

    Yields the opened ones by name and, for the others, why they could not be opened.
    """
    registry = load_registry()
    with Hardware(registry) as hardware:
        opened: dict[str, SensorAccess] = {}
        problems: dict[str, str] = {}
        with _ctrl_c_stays_with_the_main_thread():
            for s in sensors:
                try:
                    opened[s.name] = SensorAccess(s.name, hardware.open_sensor(s), s.timeout)
                except (DriverError, HardwareOpenError) as exc:
                    problems[s.name] = f"{type(exc).__name__}: {exc}"
        try:
            yield opened, problems, hardware
        finally:
            for access in opened.values():
                access.stop()


@contextlib.contextmanager
def _ctrl_c_stays_with_the_main_thread() -> Iterator[None]:
    """Threads started inside (the sensors' workers) inherit a signal mask without SIGINT.

    The kernel hands a process's SIGINT to any thread that does not block it; when a worker
    got it, the main thread stayed blocked in ``input()`` and Ctrl-C at a prompt did
    nothing until Enter.  A Ctrl-C pressed meanwhile is delivered when the mask is restored.
    """
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
