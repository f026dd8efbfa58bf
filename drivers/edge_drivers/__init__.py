"""Sensor drivers for edge-agent, usable on their own from any script.

Each module is one sensor family, written from its datasheet, with an injected bus
(smbus2 ``SMBus``-compatible) or port (pyserial-compatible).  ``edge_drivers.sim`` holds
register- and byte-level simulators so the same driver code runs without hardware.
This package knows nothing of the daemon, MQTT or SQLite.
"""
