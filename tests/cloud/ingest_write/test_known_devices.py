"""``consumer.devices = "known"`` against the real auth API (served by uvicorn): only devices
it lists as active are stored; an auth service that does not answer stops nothing."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

from tests.cloud.conftest import Api
from tests.cloud.helpers import csr_pem, new_key
from tests.cloud.ingest_write.conftest import consumer_settings, running
from tests.cloud.ingest_write.helpers import Device, count, migrated
from tests.cloud.ingest_write.publisher import DevicePublisher, wait_for
from tests.cloud.served import serve
from tests.mosquitto import Mosquitto


def active_device(api: Api, device_id: str) -> None:
    r = api.client.post("/v1/devices", json={"id": device_id}, headers=api.admin())
    assert r.status_code == 201, r.text
    r = api.client.post("/v1/enroll", json={"token": r.json()["enrollment_token"], "csr": csr_pem(new_key())})
    assert r.status_code == 200, r.text


def test_only_devices_the_auth_service_lists_as_active_are_stored(
    tmp_path: Path, api: Api, broker: Mosquitto
) -> None:
    active_device(api, "known-1")
    active_device(api, "off-1")
    assert api.client.post("/v1/devices/off-1/disable", headers=api.admin()).status_code == 200
    assert api.client.post("/v1/devices", json={"id": "pending-1"}, headers=api.admin()).status_code == 201
    r = api.client.post(
        "/v1/api-keys", json={"name": "ingest", "scopes": ["devices:read"]}, headers=api.admin()
    )
    key = r.json()["key"]
    devices = {name: Device(name) for name in ("known-1", "off-1", "pending-1", "stranger", "later-1")}
    publishers = {name: DevicePublisher(broker.port, name) for name in devices}
    ingest_url = f"sqlite:///{tmp_path / 'ingest.db'}"  # the auth service has database_url
    auth = ExitStack()
    auth_url, _recorder = auth.enter_context(serve(api.service))
    settings = consumer_settings(
        tmp_path, ingest_url, broker, devices="known", auth={"api_url": auth_url, "api_key": key}
    )
    try:
        with migrated(ingest_url) as engine, running(settings, engine) as consumer:

            def sample(name: str, **labels: str) -> float:
                return consumer.metrics.registry.get_sample_value(name, labels) or 0.0

            for name in ("off-1", "pending-1", "stranger", "known-1"):
                publishers[name].publish(devices[name].payload(devices[name].readings(3)))
            wait_for(lambda: publishers["known-1"].acked() == {1, 2, 3}, what="known-1 acked")
            wait_for(lambda: sample("edge_ingest_refused_total", reason="disabled_device") == 2)
            assert sample("edge_ingest_refused_total", reason="unknown_device") == 1
            assert count(engine, "event_ids") == 3
            assert count(engine, "quarantine", "WHERE reason = 'disabled_device'") == 2
            # The auth service goes away: what it said stands, a device never asked about passes.
            auth.close()
            publishers["known-1"].publish(devices["known-1"].payload(devices["known-1"].readings(2)))
            publishers["later-1"].publish(devices["later-1"].payload(devices["later-1"].readings(2)))
            wait_for(lambda: publishers["later-1"].acked() == {1, 2}, what="later-1 let through")
            wait_for(lambda: publishers["known-1"].acked() == {1, 2, 3, 4, 5}, what="known-1 still stored")
            assert sample("edge_ingest_device_check_failures_total") == 1
            assert count(engine, "event_ids") == 7
    finally:
        auth.close()
        for p in publishers.values():
            p.close()
