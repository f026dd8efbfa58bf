"""``edge-agent run``: ``main`` wires sampling → outbox → uplink and the service layer
together; ``trust`` wires calibration, sensor tests and remote commands into it."""
