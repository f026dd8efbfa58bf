"""The consumer behind the auth service's own broker files: mutual TLS with the ingest's
service certificate on the service listener, the secret share group, the ACL, an enrolled
device in end-to-end mode (Mosquitto 2.0)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cloud.broker import auth_with_broker
from tests.cloud.ingest_write.conftest import running
from tests.cloud.ingest_write.helpers import Device, count, ingest_settings, migrated
from tests.cloud.ingest_write.publisher import wait_for


def test_the_consumer_stores_and_acks_through_the_generated_broker(tmp_path: Path) -> None:
    with auth_with_broker(tmp_path, f"sqlite:///{tmp_path / 'auth.db'}") as env:
        ingest_identity = env.ingest()
        dev = env.enroll("site-tls")
        ingest_url = f"sqlite:///{tmp_path / 'ingest.db'}"
        settings = ingest_settings(
            tmp_path,
            ingest_url,
            mqtt={
                "host": "127.0.0.1",
                "port": env.service_port,  # the service listener: the ingest picks its client id
                "share_group": env.share_group(),  # the secret group, as service-cert wrote it
                "tls": {
                    "ca_file": ingest_identity.ca,
                    "cert_file": ingest_identity.cert,
                    "key_file": ingest_identity.key,
                },
                "reconnect_max": 0.5,
            },
            consumer={"batch_max_wait": 0.05},
        )
        events = Device("site-tls")
        with migrated(ingest_url) as engine, running(settings, engine), env.peer(dev) as device:
            assert device.connect(), env.broker.log[-2000:]
            device.subscribe("devices/site-tls/acks")
            assert device.publish("devices/site-tls/events", events.payload(events.readings(5))) == 0
            wait_for(lambda: device.received("devices/site-tls/acks"), what="the ack", timeout=15)
            assert json.loads(device.received("devices/site-tls/acks")[0]) == {
                "epoch": events.epoch,
                "seqs": [[1, 5]],
            }
            assert count(engine, "event_ids") == 5
