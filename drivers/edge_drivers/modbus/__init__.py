"""Modbus RTU and TCP devices on pymodbus: a register map per slave, shipped profiles,
several slaves sharing one line.  ``registers`` is pure (decoding, batching),
``link`` owns the pymodbus client, ``driver`` is the sensor on the driver API."""
