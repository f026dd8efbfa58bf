"""``edge-agent`` with the simulated BME280 in a temperature bath the test controls.

A calibration needs conditions the technician changes (an ice bath, a warm bath); the
room simulator only drifts.  Run as ``python -m tests.cli.bath calibrate …`` with
``SIM_BATH_FILE`` naming a file that holds the bath's temperature: the simulated chip's
air follows it, read through the real driver and register simulator, with the chip's
own noise and a known error — it reads ``SPAN · T + ZERO`` — that a two-point
calibration must find (gain 1/SPAN, offset −ZERO/SPAN).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from edge_drivers.sim import bme280 as sim_bme280

SPAN = 1.02
ZERO = 0.3


def _follow_the_bath(device: sim_bme280.SimulatedBME280, bath: Path) -> None:
    def truth(now: float) -> float:
        return SPAN * float(bath.read_text()) + ZERO

    device.signals["temperature_c"]._truth = truth  # type: ignore[method-assign]


def main() -> None:
    bath = Path(os.environ["SIM_BATH_FILE"])
    original = sim_bme280.SimulatedBME280.__init__

    def init(self: sim_bme280.SimulatedBME280, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        _follow_the_bath(self, bath)

    sim_bme280.SimulatedBME280.__init__ = init  # type: ignore[method-assign]
    from edge_agent.cli.app import main as edge_agent

    edge_agent()


if __name__ == "__main__":
    main()
