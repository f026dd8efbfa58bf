"""How fast a revocation bites: from ``POST /v1/devices/{id}/revoke`` to the device's live
MQTT session being closed by a real Mosquitto, with other devices connected.

    .venv/bin/python bench/revocation.py [--devices 50] [--trials 10]

Figures, all measured in this run on this machine (the service in-process, SQLite):

* revoke → session cut: the API call (database, broker files, SIGHUP, client-id take-over
  with a throw-away certificate, CRL again, SIGHUP) and the moment the revoked device's
  client sees its disconnect; median and worst over the trials.
* baseline: the broker files alone (render + atomic writes + SIGHUP), what every change
  costs even without cutting a session.
Target (issue 6): "within seconds".
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.cloud.broker import auth_with_broker
from tests.cloud.mqtt_peer import Peer, wait_for


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=50, help="devices connected besides the revoked ones")
    parser.add_argument("--trials", type=int, default=10, help="devices revoked, one after the other")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        with auth_with_broker(base, f"sqlite:///{base / 'auth.db'}", host="127.0.0.1") as env:
            others = [env.peer(env.enroll(f"bystander-{i}")) for i in range(args.devices)]
            victims = [env.peer(env.enroll(f"victim-{i}")) for i in range(args.trials)]
            peers: list[Peer] = others + victims
            for peer in peers:
                assert peer.connect(), f"{peer.client_id} could not connect"
            files = []
            for _ in range(args.trials):
                t0 = time.perf_counter()
                env.service.broker.apply()
                files.append(time.perf_counter() - t0)
            api, cut = [], []
            for victim in victims:
                t0 = time.perf_counter()
                env.revoke(victim.client_id)
                api.append(time.perf_counter() - t0)
                wait_for(lambda v=victim: bool(v.disconnects), timeout=30, what="the cut")  # type: ignore[misc]
                cut.append(time.perf_counter() - t0)
            still_up = sum(1 for p in others if p.connected)
            for peer in peers:
                peer.close()

    def ms(values: list[float]) -> str:
        return f"median {statistics.median(values) * 1000:.0f} ms, worst {max(values) * 1000:.0f} ms"

    print(f"{args.devices} bystanders connected, {args.trials} devices revoked one by one")
    print(f"revoke API call:              {ms(api)}")
    print(f"revoke -> live session cut:   {ms(cut)}")
    print(f"baseline, broker files+SIGHUP: {ms(files)}")
    print(f"bystanders still connected:   {still_up}/{args.devices}")


if __name__ == "__main__":
    main()
