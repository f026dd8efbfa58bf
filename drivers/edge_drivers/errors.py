"""Errors raised by sensor drivers.

Every driver failure is a :class:`DriverError`, so a caller can catch one type
and still tell the causes apart::

    DriverError
     ├── BusError               the bus transfer failed (NACK, EIO, EBUSY …); ``errno`` kept
     ├── DataIntegrityError     bytes arrived but are not trustworthy
     │    ├── ChecksumError     CRC / checksum mismatch
     │    └── MalformedDataError truncated, wrong length, unparsable field
     ├── ChipNotFoundError      nothing answers at the address when the driver starts
     │    └── WrongChipError    something answers, but it is not this chip
     ├── SensorTimeoutError     the sensor did not produce data in time (conversion never
     │                          ready, serial line silent)
     └── NotReadyError          the sensor answers correctly but holds no valid value yet
          │                     (a PMS5003 warming up, a BME280 "skipped" code)
          └── ChipResetError    the chip lost its configuration (brown-out, ESD); the driver
                                re-applied it, the next reading is valid

    ValueError
     └── OptionError            an option breaks the driver's rules (not a sensor failure):
                                names the option, ``ads1115 option gain=2.5: must be one of …``

A Modbus device that answers with an exception code adds (exception codes of the Modbus
application protocol v1.1b3, section 7)::

    DriverError
     └── DeviceRejectedError    the device answered with an exception code; ``code`` kept
          ├── IllegalRegisterError  01/02/03: the register map asks for what the device lacks
          └── DeviceBusyError       05/06: the device is busy; asking again later is right

Foreign exceptions (``OSError`` from smbus2, ``SerialException`` from pyserial) are
converted where the driver touches the bus and chained (``raise … from exc``) so the
original errno is never lost.  Drivers raise nothing else for a failing sensor;
``ValueError`` / ``TypeError`` are reserved for programming and option errors.
"""

from __future__ import annotations

import errno as errno_mod
from collections.abc import Sequence


class DriverError(Exception):
    """Base class of every error a driver raises for a failing sensor."""


class BusError(DriverError):
    """A bus transfer failed.  ``errno`` holds the OS error number when there was one."""

    def __init__(self, message: str, *, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno

    @classmethod
    def from_os_error(cls, what: str, exc: OSError) -> BusError:
        """Describe ``exc`` (from smbus2 or pyserial) as a bus error, keeping its errno."""
        code = exc.errno
        name = errno_mod.errorcode.get(code, "") if code is not None else ""
        # The Pi's controller reports a NACK as EREMOTEIO; the kernel convention is ENXIO.
        no_ack = code in (errno_mod.EREMOTEIO, errno_mod.ENXIO)
        hint = " (no ACK: check wiring, address and power)" if no_ack else ""
        detail = f"errno {code} {name}".strip() if code is not None else str(exc)
        return cls(f"{what}: {detail}{hint}", errno=code)


class DataIntegrityError(DriverError):
    """Data arrived but failed an integrity check; it is never returned as numbers."""


class ChecksumError(DataIntegrityError):
    """A CRC or checksum did not match."""


class MalformedDataError(DataIntegrityError):
    """A frame or sentence was truncated, had the wrong length or an unparsable field."""


class ChipNotFoundError(DriverError):
    """Nothing answers at the configured address or port."""


class WrongChipError(ChipNotFoundError):
    """A device answers, but its identification says it is not the expected chip."""


class SensorTimeoutError(DriverError):
    """The sensor did not deliver data within the allowed time."""


class NotReadyError(DriverError):
    """The sensor works but has no valid value to give: warming up, a "skipped" or reset
    register value.  Never returned as a number; the agent's health logic tolerates it for
    a while (a warm-up is not a fault) before it counts as an error."""


class ChipResetError(NotReadyError):
    """The chip was reset behind the driver's back (brown-out, ESD) and lost its
    configuration; the driver has written it again, so the next reading is valid."""


_NO_VALUE = object()


class OptionError(ValueError):
    """A keyword option breaks one of its driver's rules.

    ``path`` is where the option is (``("gain",)``, ``("scaling", 0, "quantity")``; empty
    for a rule across options) and ``reason`` what is wrong with it, kept apart so the
    agent can report ``sensors[2].options.gain: must be one of …`` while a script that
    uses the driver directly reads ``ads1115 option gain=2.5: must be one of …``.  A
    ``ValueError``, because the caller's input is wrong, not the sensor.
    """

    def __init__(
        self, driver: str, path: str | Sequence[str | int], reason: str, *, value: object = _NO_VALUE
    ) -> None:
        self.driver = driver
        self.path: tuple[str | int, ...] = (path,) if isinstance(path, str) else tuple(path)
        self.reason = reason
        self.value = value
        super().__init__(self._message())

    def _message(self) -> str:
        if not self.path:
            return f"{self.driver} options: {self.reason}"
        where = option_path(self.path)
        if self.value is not _NO_VALUE:
            where += f"={_shown(self.value)}"
        return f"{self.driver} option {where}: {self.reason}"

    def within(self, *prefix: str | int) -> OptionError:
        """The same error for an option nested under ``prefix`` (``scaling``, 0)."""
        return OptionError(self.driver, (*prefix, *self.path), self.reason, value=self.value)


_SHOWN_MAX = 60
"""Characters of a value quoted in a message: enough to recognise it, not to reproduce it."""


def _shown(value: object) -> str:
    """``repr(value)`` for a message, shortened; never raises.

    The value is the caller's, of any type: ``repr`` of an int beyond
    ``sys.get_int_max_str_digits()`` (``10**5000``) raises ``ValueError``, and an object's
    own ``__repr__`` may fail in any way.  An error about a bad value must not fail itself.
    """
    try:
        text = repr(value)
    except Exception:  # see above: the error being built must still be raised
        if isinstance(value, int):
            return f"<an integer of {value.bit_length()} bits>"
        return f"<a {type(value).__name__} that cannot be printed>"
    return text if len(text) <= _SHOWN_MAX else text[: _SHOWN_MAX - 1] + "…"


def option_path(path: Sequence[str | int]) -> str:
    """``("scaling", 0, "quantity")`` -> ``scaling[0].quantity``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


class DeviceRejectedError(DriverError):
    """A device answered a request with an exception code (``code``) instead of data."""

    def __init__(self, message: str, *, code: int) -> None:
        super().__init__(message)
        self.code = code


class IllegalRegisterError(DeviceRejectedError):
    """The device has no such function, register or value: a configuration error, not a fault."""


class DeviceBusyError(DeviceRejectedError):
    """The device is busy with a long command (or acknowledged it): the read can be retried."""
