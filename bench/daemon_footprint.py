"""Benchmark (c): peak RSS and CPU of ``edge-agent run`` on simulated sensors, above its floor.

Runs the real daemon as a subprocess against a private Mosquitto:

* 10 simulated sensors at 10 Hz for ``--seconds`` (default 60): peak RSS (VmHWM);
* 5 simulated sensors at 1 Hz: CPU time as a share of one core.

The floor, measured in the same run: a bare interpreter importing the third-party
modules ``edge-agent run`` itself imports, computed here from ``sys.modules`` of a
process that imports ``edge_agent.cli.app`` and ``edge_agent.daemon.main`` (printed by
package).  What is above it is the agent's own: its modules, its pydantic models'
validators, and running.  The daemon and the floor run with the systemd unit's
``Environment=`` lines (``MALLOC_ARENA_MAX=1``).  Targets: overhead (daemon − floor)
< 12 MB; CPU < 3 % of one core for 5 sensors at 1 Hz.

Measured on the 2-core development machine, two runs: daemon 51.0 MB, floor 42.1–42.2 MB,
overhead 8.8–8.9 MB; CPU 0.85–1.18 % of a core at 5 sensors × 1 Hz.  pydantic-settings,
which reads the ``EDGE_…`` variables since it replaced the agent's own 130-line parser,
costs the daemon 1.2–1.3 MB of peak RSS (49.7–49.8 MB before, in the same session).  It
raises the floor by 2.5–2.7 MB (the library imports every source it has, AWS, Azure, GCP,
CLI with argparse, and python-dotenv), more than it costs the daemon, since part of what
it imports the daemon loaded anyway: the overhead fell from 10.1–10.2 MB to 8.8–8.9, so
read the library's cost on the daemon's figure, not on the overhead.  Where the overhead
goes: the agent's modules and pydantic models ~6 MB (the settings package ~1.7 MB of
it), running ~2 MB (SQLite and its first connection, the metrics endpoint, 10 simulated
sensors with their worker threads).  What was cut before: rich (~2.4 MB; only the
technician's commands draw) is not imported by ``edge-agent run``; one malloc arena
instead of two (~0.9 MB); the simulators no longer keep every command they were sent
(+10 KB/s, without end); a backlog no longer grows the outbox's SQLite page cache past
512 KiB (was 2 MiB).

    .venv/bin/python bench/daemon_footprint.py [--seconds 60]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.mosquitto import Mosquitto  # noqa: E402

I2C = [("bme280", 0x76), ("bme280", 0x77), ("sht3x", 0x44), ("sht3x", 0x45)] + [
    ("ads1115", a) for a in (0x48, 0x49, 0x4A, 0x4B)
]
SERIAL = ["pms5003", "pms5003"]


def unit_environment(unit: Path = REPO / "systemd" / "edge-agent.service") -> dict[str, str]:
    """The ``Environment=`` settings of the systemd unit, so the daemon is measured as it runs
    on a device (glibc's malloc arenas per thread, for one, cost several MB of RSS)."""
    env: dict[str, str] = {}
    for line in unit.read_text().splitlines():
        if line.startswith("Environment="):
            key, _, value = line.removeprefix("Environment=").partition("=")
            env[key] = value
    return env


UNIT_ENVIRONMENT = unit_environment()


def config(directory: Path, port: int, count: int, interval: float) -> Path:
    lines = [
        '[device]\nid = "bench"\nclock_check = "none"\n',
        f'[storage]\nstate_dir = "{directory / "state"}"\n',
        f'[mqtt]\nhost = "127.0.0.1"\nport = {port}\n',
    ]
    sensors: list[str] = []
    for i, (driver, address) in enumerate(I2C):
        sensors.append(
            f'[[sensors]]\nname = "s{i}"\ndriver = "{driver}"\nbus = "sim"\naddress = {address}\ninterval = {interval}\n'
        )
    for j, driver in enumerate(SERIAL):
        sensors.append(
            f'[[sensors]]\nname = "p{j}"\ndriver = "{driver}"\nport = "sim://"\ninterval = {interval}\n'
            'options = { mode = "passive" }\n'
        )
    path = directory / f"bench-{count}.toml"
    path.write_text("\n".join(lines + sensors[:count]))
    return path


def proc_status(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime


def run_agent(cfg: Path, seconds: float, warmup: float = 5.0) -> tuple[int, float, int]:
    """Returns (peak RSS bytes, CPU share of one core after warm-up, events committed)."""
    agent = subprocess.Popen(
        [sys.executable, "-m", "edge_agent", "run", "--config", str(cfg)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=_bench_environment(),
    )
    try:
        time.sleep(warmup)
        cpu0, t0 = cpu_seconds(agent.pid), time.monotonic()
        time.sleep(seconds)
        cpu1, t1 = cpu_seconds(agent.pid), time.monotonic()
        peak = proc_status(agent.pid, "VmHWM")
    finally:
        agent.terminate()
        agent.wait(30)
    from edge_agent.outbox import read_stats

    committed = read_stats(cfg.parent / "state" / "outbox.db").next_seq - 1
    return peak, (cpu1 - cpu0) / (t1 - t0), committed


def _bench_environment() -> dict[str, str]:
    """The environment the daemon and its floor both run in: no ``EDGE_`` settings, the unit's lines."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
    env.update(UNIT_ENVIRONMENT)
    return env


# Modules loaded from site-packages (where pip puts third-party code): the standard
# library, builtins and the editable edge_* sources are elsewhere.
_THIRD_PARTY = (
    "import json, sys, sysconfig\n"
    "roots = tuple({sysconfig.get_paths()[k] for k in ('purelib', 'platlib')})\n"
    "print(json.dumps(sorted(n for n, m in list(sys.modules.items())"
    " if (getattr(m, '__file__', None) or '').startswith(roots))))"
)


def _third_party_after(code: str) -> set[str]:
    out = subprocess.check_output(
        [sys.executable, "-c", f"{code}\n{_THIRD_PARTY}"], env=_bench_environment(), text=True
    )
    return set(json.loads(out.splitlines()[-1]))


def daemon_libraries() -> list[str]:
    """The third-party modules ``edge-agent run`` imports at start-up.

    The modules from site-packages a process holds after importing the CLI app and the
    daemon (so neither the standard library nor ``edge_*``), less those a bare interpreter
    already holds (the editable installs' finders).  Whole dotted names, not only the
    packages: ``import pydantic`` or ``import paho`` alone loads next to nothing, what
    costs is the submodules the daemon uses (``pydantic.main``, ``paho.mqtt.client``)."""
    bare = _third_party_after("pass")
    daemon = _third_party_after("import edge_agent.cli.app, edge_agent.daemon.main")
    return sorted(m for m in daemon - bare if not m.startswith("edge_"))


def floor_rss(modules: list[str]) -> int:
    """Peak RSS of a bare interpreter, in the daemon's environment, importing ``modules``."""
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception as exc:\n"
        "        print(f'floor: cannot import {name}: {exc}', file=sys.stderr)\n"
        "print(open('/proc/self/status').read().split('VmHWM:')[1].split()[0])"
    )
    out = subprocess.check_output([sys.executable, "-c", code], env=_bench_environment(), text=True)
    return int(out.splitlines()[-1]) * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    mb = 1024 * 1024
    libraries = daemon_libraries()
    floor = floor_rss(libraries)
    with tempfile.TemporaryDirectory() as tmp, Mosquitto(Path(tmp) / "broker") as broker:
        d10 = Path(tmp) / "ten"
        d10.mkdir()
        peak, cpu10, n10 = run_agent(config(d10, broker.port, 10, 0.1), args.seconds)
        d5 = Path(tmp) / "five"
        d5.mkdir()
        _, cpu5, n5 = run_agent(config(d5, broker.port, 5, 1.0), args.seconds)
    packages = sorted({m.split(".")[0] for m in libraries})
    ten, five = f"10 sensors @ 10 Hz, {args.seconds:.0f} s", f" 5 sensors @  1 Hz, {args.seconds:.0f} s"
    print(f"libraries `edge-agent run` imports ({len(libraries)} modules): {', '.join(packages)}")
    print(f"(the daemon and the floor run with the unit's environment: {UNIT_ENVIRONMENT})")
    print(f"{'floor: bare interpreter importing those modules':50} peak RSS {floor / mb:5.1f} MB")
    print(f"{'edge-agent run, ' + ten:50} peak RSS {peak / mb:5.1f} MB ({n10} events)")
    print(f"{'overhead (daemon - floor)':50}          {(peak - floor) / mb:5.1f} MB (target < 12 MB)")
    print(f"{'edge-agent run, ' + ten:50} CPU {100 * cpu10:5.2f} % of one core")
    print(f"{'edge-agent run, ' + five:50} CPU {100 * cpu5:5.2f} % of one core (target < 3 %; {n5} events)")


if __name__ == "__main__":
    main()
