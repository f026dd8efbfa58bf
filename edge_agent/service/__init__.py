"""Running edge-agent as a service: what systemd, Prometheus and ``edge-agent status`` see.

- :mod:`.notify`    — ``sd_notify`` without libsystemd: datagrams to ``$NOTIFY_SOCKET``;
- :mod:`.watchdog`  — the progress monitor: each pipeline stage reports progress, and
  ``WATCHDOG=1`` is sent only while none has stalled past its budget;
- :mod:`.snapshot`  — one JSON-able picture of the running daemon (status, STATUS=);
- :mod:`.status_server` — serves that picture on a Unix socket in the state directory;
- :mod:`.reload`    — SIGHUP: re-read, validate, diff and apply the configuration;
- :mod:`.sensor_set` — the sensor tasks, started/stopped one by one on reload;
- :mod:`.metrics`   — Prometheus on ``[metrics] listen``;
- :mod:`.logs`      — ``[logging]``: key=value or JSON lines, repeats counted, secrets masked,
  journald priorities.
"""
