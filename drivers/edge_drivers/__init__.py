"""Sensor drivers for edge-agent, usable on their own from any script.

Each module is one sensor family, written from its datasheet, with an injected bus
(smbus2 ``SMBus``-compatible) or port (pyserial-compatible).  ``edge_drivers.sim`` holds
register- and byte-level simulators so the same driver code runs without hardware.
This package knows nothing of the daemon, MQTT, SQLite or pydantic (it needs smbus2 and
pyserial only).  A driver package of your own imports ``edge_drivers.api``; its simulator
``edge_drivers.sim.api``.
"""
