"""Where a reading is taken.

``registry`` finds the installed drivers (the ``edge_agent.drivers`` entry points),
``hardware`` opens the buses and ports the config names and builds the drivers on them,
``scanner`` probes a bus for ``edge-agent scan``, ``worker`` runs a sensor's blocking
driver calls on its own thread, ``sampler`` reads each sensor on its schedule and hands
every reading to the outbox, ``health`` is the per-sensor circuit breaker, and
``clock_sync`` tells whether the wall clock that stamps a reading can be trusted yet.
"""
