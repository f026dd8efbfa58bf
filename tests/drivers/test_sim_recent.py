"""The simulators' records of what they were sent stay bounded in a long-running daemon."""

from __future__ import annotations

from edge_drivers.sim.recent import RecentBytes, RecentList
from tests.drivers.test_sht3x import Rig


def test_recent_list_keeps_the_last_items_in_order_and_stays_a_list() -> None:
    log: RecentList[int] = RecentList(keep=10)
    for i in range(1000):
        log.append(i)
        assert 10 <= len(log) <= 20 or len(log) == i + 1
    assert log[-10:] == list(range(990, 1000))
    assert log == list(range(1000 - len(log), 1000))  # compares as the list tests expect
    assert log.index(995) == len(log) - 5


def test_recent_bytes_keeps_the_last_bytes() -> None:
    sent = RecentBytes(keep=100)
    for i in range(500):
        sent.extend(bytes([i % 256]) * 7)
    assert 100 <= len(sent) <= 200
    assert sent.endswith(bytes([499 % 256]) * 7)
    assert RecentBytes() == b"" and isinstance(sent, bytearray)


def test_a_simulated_sensor_read_for_minutes_keeps_a_bounded_log_of_the_latest_commands() -> None:
    first = Rig()
    start = len(first.sim.commands)
    first.driver.read()
    one_read = first.sim.commands[start:]
    assert one_read

    rig = Rig()
    for _ in range(3000):  # 5 minutes at 10 Hz
        rig.driver.read()
        rig.clock.advance(0.1)
    assert len(rig.sim.commands) <= 2 * rig.sim.commands.keep < 3000 * len(one_read)
    assert rig.sim.commands[-len(one_read) :] == one_read
