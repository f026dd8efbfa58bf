"""The service listener and the ingest's rights, enforced by a real Mosquitto 2.0 (issue 13).

N ingest processes share one service certificate and tell themselves apart by their
client ids (``<CN>@<instance>``) on a listener that trusts only the service CA; devices stay
on listeners that force the client id to their identity.  Each attack is tried on every
listener: a device naming another client's id, a device reading the fleet's events.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cloud.broker import auth_with_broker
from tests.cloud.mqtt_peer import wait_for
from tests.mosquitto import free_port

NOT_AUTHORIZED = 0x87
ACCEPTED = {0x00, 0x10}  # success, or success with no matching subscribers


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'auth.db'}"


def test_two_ingest_processes_with_their_own_client_ids_split_a_shared_subscription(
    tmp_path: Path, sqlite_url: str
) -> None:
    with auth_with_broker(tmp_path, sqlite_url) as env:
        ingest, dev = env.ingest(), env.enroll("dev-a")
        with env.peer(ingest, "ingest@1") as i1, env.peer(ingest, "ingest@2") as i2, env.peer(dev) as device:
            assert i1.connect() and i2.connect() and device.connect(), env.broker.log
            i1.subscribe("$share/ingest/devices/+/events")
            i2.subscribe("$share/ingest/devices/+/events")
            sent = [f"batch-{n}".encode() for n in range(20)]
            for payload in sent:
                assert device.publish("devices/dev-a/events", payload) in ACCEPTED
            wait_for(lambda: len(i1.received() + i2.received()) >= len(sent), what="every batch at a process")
            # Each batch went to exactly one process, and both had a share.
            assert sorted(i1.received() + i2.received()) == sorted(sent)
            assert i1.received() and i2.received()
            # Neither process took the other's session over.
            assert i1.disconnects == [] and i2.disconnects == []
            assert "as ingest@1" in env.broker.log and "as ingest@2" in env.broker.log


def test_a_command_reply_reaches_the_ingest_and_no_other_device(tmp_path: Path, sqlite_url: str) -> None:
    with auth_with_broker(tmp_path, sqlite_url) as env:
        ingest, a, b = env.ingest(), env.enroll("dev-a"), env.enroll("dev-b")
        with env.peer(ingest, "ingest@1") as i1, env.peer(a) as pa, env.peer(b) as pb:
            assert i1.connect() and pa.connect() and pb.connect()
            i1.subscribe("devices/+/responses/ingest@1/#")  # the replies to this process's requests
            i1.subscribe("devices/+/responses")  # refusals of requests without a usable response topic
            for topic in ("devices/+/responses/#", "devices/dev-a/responses/#", "#"):
                pb.subscribe(topic)
            reply = "devices/dev-a/responses/ingest@1/req-1"
            assert pa.publish(reply, b"reply") in ACCEPTED
            assert pa.publish("devices/dev-a/responses", b"refusal") in ACCEPTED
            wait_for(lambda: len(i1.received()) == 2, what="the reply and the refusal at the ingest")
            assert i1.received(reply) == [b"reply"] and i1.received("devices/dev-a/responses") == [b"refusal"]
            # A command dev-b may read, sent after the replies: once it is there, they would be too.
            assert i1.publish("devices/dev-b/commands/ping", b"marker") in ACCEPTED
            wait_for(lambda: b"marker" in pb.received(), what="the marker at dev-b")
            assert set(pb.received()) == {b"marker"}


def test_the_ingest_writes_acks_and_commands_and_nothing_else(tmp_path: Path, sqlite_url: str) -> None:
    with auth_with_broker(tmp_path, sqlite_url) as env:
        ingest, a = env.ingest(), env.enroll("dev-a")
        with env.peer(ingest, "ingest@1") as i1, env.peer(ingest, "ingest@2") as i2, env.peer(a) as pa:
            assert i1.connect() and i2.connect() and pa.connect()
            i2.subscribe("#")
            for topic in (
                "devices/dev-a/events",
                "devices/dev-a/status",
                "devices/dev-a/responses",
                "devices/dev-a/responses/ingest@1/req-1",
                f"devices/{ingest.device_id}/events",  # the per-device patterns apply to its name too
                f"devices/{ingest.device_id}/status",
                f"devices/{ingest.device_id}/responses/x",
                f"devices/{ingest.device_id}/acks",
                "devices/dev-a",
                "elsewhere",
            ):
                assert i1.publish(topic, b"forged") == NOT_AUTHORIZED, topic
            assert i1.publish("devices/dev-a/acks", b"ack") in ACCEPTED
            assert i1.publish("devices/dev-a/commands/ping", b"command") in ACCEPTED
            # It reads events, status and replies, not what another process sends to devices.
            assert pa.publish("devices/dev-a/events", b"marker") in ACCEPTED
            wait_for(lambda: b"marker" in i2.received(), what="the marker at the ingest")
            assert set(i2.received()) == {b"marker"}


def test_no_device_gets_onto_the_service_listener(tmp_path: Path, sqlite_url: str) -> None:
    with auth_with_broker(tmp_path, sqlite_url, password_port=free_port()) as env:
        ingest, a, b = env.ingest(), env.enroll("dev-a"), env.enroll("dev-b")
        password_device = env.enroll_password("dev-pw")
        with env.peer(b) as pb, env.peer(ingest, "ingest@1") as i1:
            assert pb.connect() and i1.connect()
            # A device certificate with another device's id, an ingest process's, its own:
            # the handshake fails (the listener trusts the service CA only).
            for client_id in ("dev-b", "ingest@1", "dev-a"):
                attacker = env.peer(a, client_id, port=env.service_port)
                assert not attacker.connect(), client_id
            # A password-mode device has no certificate at all.
            assert not password_device("dev-b", port=env.service_port).connect()
            # Nobody was taken over.
            assert pb.disconnects == [] and i1.disconnects == []
            assert pb.publish("devices/dev-b/events") in ACCEPTED
            # The other way round: the service certificate is no device identity either.
            assert not env.peer(ingest, "dev-b", port=env.broker.port).connect()
            assert pb.disconnects == []


def test_on_every_device_listener_a_device_keeps_its_id_and_reads_no_events(
    tmp_path: Path, sqlite_url: str
) -> None:
    with auth_with_broker(tmp_path, sqlite_url, password_port=free_port()) as env:
        ingest, a, b = env.ingest(), env.enroll("dev-a"), env.enroll("dev-b")
        password_device = env.enroll_password("dev-pw")
        group = env.share_group()
        with env.peer(ingest, "ingest@1") as i1, env.peer(ingest, "ingest@2") as i2, env.peer(b) as pb:
            assert i1.connect() and i2.connect() and pb.connect()
            for process in (i1, i2):
                process.subscribe(f"$share/{group}/devices/+/events")
            sent: list[bytes] = []
            # dev-a (certificate, device listener) and dev-pw (password listener) each name a
            # device's client id and an ingest process's.
            for cert_id, password_id in (("dev-b", "ingest@1"), ("ingest@2", "dev-b")):
                with env.peer(a, cert_id) as pa, password_device(password_id) as pp:
                    assert pa.connect() and pp.connect(), env.broker.log  # accepted as themselves
                    for attacker in (pa, pp):
                        for topic in ("devices/+/events", "#", "$share/ingest/devices/+/events"):
                            attacker.subscribe(topic)
                    for n in range(10):
                        sent.append(f"{cert_id}-{n}".encode())
                        assert pb.publish("devices/dev-b/events", sent[-1]) in ACCEPTED
                    wait_for(
                        lambda: len(i1.received() + i2.received()) >= len(sent),
                        what="every event at the ingest",
                    )
                    # Commands each attacker may read, sent after the events: once they have
                    # arrived, the events would have too.
                    assert i1.publish("devices/dev-a/commands/marker", b"marker") in ACCEPTED
                    assert i1.publish("devices/dev-pw/commands/marker", b"marker") in ACCEPTED
                    wait_for(
                        lambda: b"marker" in pa.received() and b"marker" in pp.received(), what="markers"
                    )
                    assert set(pa.received()) == {b"marker"} and set(pp.received()) == {b"marker"}
                    # Nobody was taken over, and the ingest lost nothing to the attackers.
                    assert pb.disconnects == [] and i1.disconnects == [] and i2.disconnects == []
                    assert sorted(i1.received() + i2.received()) == sorted(sent)
            assert "as dev-a" in env.broker.log and "as dev-pw" in env.broker.log


def test_a_device_in_a_share_group_it_knows_swallows_its_share(tmp_path: Path, sqlite_url: str) -> None:
    """Re-checks the broker fact the secret group name exists for (Mosquitto 2.0.11): the ACL
    file cannot refuse a SUBSCRIBE, and a group member whose delivery the ACL refuses still
    takes its turn, so those events reach no one."""
    with auth_with_broker(tmp_path, sqlite_url) as env:
        ingest, a, b = env.ingest(), env.enroll("dev-a"), env.enroll("dev-b")
        with env.peer(ingest, "ingest@1") as i1, env.peer(a) as pa, env.peer(b) as pb:
            assert i1.connect() and pa.connect() and pb.connect()
            i1.subscribe("$share/ingest/devices/+/events")
            i1.subscribe("devices/+/status")  # not shared: the marker
            pa.subscribe("$share/ingest/devices/+/events")
            for n in range(10):
                assert pb.publish("devices/dev-b/events", f"event-{n}".encode()) in ACCEPTED
            assert pb.publish("devices/dev-b/status", b"marker") in ACCEPTED
            wait_for(lambda: i1.received("devices/dev-b/status") == [b"marker"], what="the marker")
            assert 0 < len(i1.received("devices/dev-b/events")) < 10
            assert pa.received() == []


def test_an_ingest_process_back_under_its_client_id_gets_what_was_queued_for_it(
    tmp_path: Path, sqlite_url: str
) -> None:
    """Re-checks the broker fact behind "the same client id across restarts": a group member
    with a session that outlives the connection keeps its share of the group's messages while
    it is away, for itself alone; under a new id they would wait in a session nobody resumes."""
    with auth_with_broker(tmp_path, sqlite_url) as env:
        ingest, b, group = env.ingest(), env.enroll("dev-b"), env.share_group()
        with env.peer(ingest, "ingest@1", session_expiry=3600) as i1, env.peer(b) as pb:
            i2 = env.peer(ingest, "ingest@2", session_expiry=3600)
            assert i1.connect() and i2.connect() and pb.connect()
            for process in (i1, i2):
                process.subscribe(f"$share/{group}/devices/+/events")
            i1.subscribe("devices/+/status")  # not shared: the marker
            i2.close()  # a clean DISCONNECT; the session stays
            sent = [f"event-{n}".encode() for n in range(10)]
            for payload in sent:
                assert pb.publish("devices/dev-b/events", payload) in ACCEPTED
            assert pb.publish("devices/dev-b/status", b"marker") in ACCEPTED
            wait_for(lambda: bool(i1.received("devices/dev-b/status")), what="the marker")
            got = i1.received("devices/dev-b/events")
            assert 0 < len(got) < len(sent)
            with env.peer(ingest, "ingest@2", session_expiry=3600) as back:
                assert back.connect()  # no SUBSCRIBE: the session has it
                wait_for(lambda: len(got) + len(back.received()) >= len(sent), what="the rest, at ingest@2")
                assert sorted(got + back.received()) == sorted(sent)


def test_the_service_listener_leaves_the_client_id_to_the_client_across_all_listeners(
    tmp_path: Path, sqlite_url: str
) -> None:
    """Re-checks the broker fact the service CA exists for (Mosquitto 2.0.11): client ids are
    one namespace across listeners, and on the service listener the client names its own, so
    whoever gets there can take over any session.  Hence: certificates of the service CA only,
    and the ingest's "<CN>@<instance>" ids, which no device id can equal."""
    with auth_with_broker(tmp_path, sqlite_url) as env:
        ingest, b = env.ingest(), env.enroll("dev-b")
        with env.peer(b) as pb, env.peer(ingest, "dev-b") as impostor:
            assert pb.connect() and impostor.connect()
            wait_for(lambda: bool(pb.disconnects), what="dev-b's session to be taken over")
            assert impostor.connected


def test_the_ingest_away_gets_a_burst_beyond_mosquittos_default_queue(
    tmp_path: Path, sqlite_url: str
) -> None:
    """Mosquitto queues 1,000 QoS 1 messages per client by default and drops the rest: a
    fleet's connect burst while the ingest was behind lost its share until the devices'
    ack timeout (bench/fleet.py).  The rendered files raise it (broker.max_queued_messages)."""
    burst = 1500
    with auth_with_broker(tmp_path, sqlite_url) as env:
        ingest, b = env.ingest(), env.enroll("dev-b")
        with env.peer(ingest, "ingest@1", session_expiry=3600) as away, env.peer(b) as pb:
            assert away.connect() and pb.connect()
            away.subscribe("devices/+/events")
            away.close()  # a clean DISCONNECT; the session and its queue stay
            for n in range(burst):
                assert pb.publish("devices/dev-b/events", f"event-{n}".encode()) in ACCEPTED
        with env.peer(ingest, "ingest@1", session_expiry=3600) as back:
            assert back.connect()
            wait_for(lambda: len(back.received()) >= burst, what=f"{burst} queued events")
            assert len(back.received()) == burst
