"""The power-cut file system through a real FUSE mount: it drops exactly what it should."""

from __future__ import annotations

import errno
import json
import os
import socket
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.powercut.mount import PowerCutMount, require_fuse

Mounter = Callable[[], PowerCutMount]


@pytest.fixture
def mounter(tmp_path: Path) -> Iterator[Mounter]:
    require_fuse()
    mounts: list[PowerCutMount] = []

    def mount() -> PowerCutMount:
        m = PowerCutMount(tmp_path / "backing", tmp_path / "mnt")
        mounts.append(m)
        return m

    yield mount
    for m in mounts:
        m.unmount()


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def test_fsynced_data_survives_and_later_writes_are_dropped(mounter: Mounter) -> None:
    m = mounter()
    f = m.mountpoint / "data"
    fd = os.open(f, os.O_CREAT | os.O_RDWR, 0o644)
    os.write(fd, b"durable")
    os.fsync(fd)
    os.write(fd, b"+lost")
    os.ftruncate(fd, 3)  # also lost: the size goes back to what was fsynced
    os.close(fd)
    fsync_path(m.mountpoint)
    assert f.read_bytes() == b"dur", "before the cut the mount shows every write"
    report = m.power_cycle()
    assert report["dropped_ops"] == 2 and report["dropped_bytes"] == 5
    m2 = mounter()
    assert (m2.mountpoint / "data").read_bytes() == b"durable"


def test_names_need_a_directory_fsync(mounter: Mounter) -> None:
    m = mounter()
    root = m.mountpoint
    for name in ("keep", "gone", "moved"):
        (root / name).write_bytes(name.encode())
        fsync_path(root / name)
    fsync_path(root)
    (root / "gone").unlink()
    (root / "moved").rename(root / "renamed")
    (root / "new").write_bytes(b"new")
    fsync_path(root / "new")  # its content, not its name
    os.mkdir(root / "sub")
    assert sorted(os.listdir(root)) == ["keep", "new", "renamed", "sub"]
    m.power_cycle()
    m2 = mounter()
    assert sorted(os.listdir(m2.mountpoint)) == ["gone", "keep", "moved"]
    assert (m2.mountpoint / "gone").read_bytes() == b"gone", "an unlinked name comes back with its content"
    (m2.mountpoint / "moved").rename(m2.mountpoint / "renamed")
    fsync_path(m2.mountpoint)
    m2.power_cycle()
    assert sorted(os.listdir(mounter().mountpoint)) == ["gone", "keep", "renamed"]


def test_prefix_mode_keeps_writes_in_order(mounter: Mounter) -> None:
    chunks = [bytes([65 + i]) * 100 for i in range(20)]
    lengths = set()
    for seed in range(4):
        m = mounter()
        f = m.mountpoint / f"log{seed}"
        f.write_bytes(b"")
        fsync_path(f)
        fsync_path(m.mountpoint)
        fd = os.open(f, os.O_WRONLY | os.O_APPEND)
        for chunk in chunks:
            os.write(fd, chunk)
        os.close(fd)
        report = m.power_cycle("prefix", seed=seed)
        content = (m.backing / f"log{seed}").read_bytes()
        assert content == b"".join(chunks)[: len(content)] and len(content) % 100 == 0
        assert report["kept_ops"] == len(content) // 100
        lengths.add(len(content))
    assert len(lengths) > 1, "different seeds keep different prefixes"


def test_an_armed_cut_fails_that_write_and_everything_after(mounter: Mounter) -> None:
    m = mounter()
    f = m.mountpoint / "x.db"
    fd = os.open(f, os.O_CREAT | os.O_RDWR, 0o644)
    m.arm(".db", after=3)
    os.write(fd, b"1")
    os.fsync(fd)
    os.write(fd, b"2")
    with pytest.raises(OSError) as raised:
        os.write(fd, b"3")
    assert raised.value.errno == errno.EIO
    with pytest.raises(OSError):
        os.fsync(fd)
    os.close(fd)
    assert m.stats()["off"] is True
    m.revert()
    m.unmount()
    assert not (m.backing / "x.db").exists(), "its name was never made durable"


def sqlite_rows(path: Path) -> tuple[str, int]:
    conn = sqlite3.connect(path)
    try:
        check = conn.execute("PRAGMA quick_check").fetchone()[0]
        return check, conn.execute("SELECT count(*) FROM t").fetchone()[0]
    finally:
        conn.close()


@pytest.mark.parametrize(("synchronous", "survive"), [("FULL", True), ("OFF", False)])
def test_sqlite_wal_commits_survive_only_when_fsynced(
    mounter: Mounter, synchronous: str, survive: bool
) -> None:
    """The mount carries SQLite's WAL and its mmap'd -shm, and bites: without fsync, commits are gone."""
    m = mounter()
    db = m.mountpoint / "t.db"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("CREATE TABLE t (x)")
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    for i in range(50):
        conn.execute("INSERT INTO t VALUES (?)", (i,))
    stats = m.stats()
    m.cut()
    conn.close()  # fails to checkpoint on a dead disk: the process simply goes away
    m.revert()
    m.unmount()
    assert stats["dir_fsyncs"].get("", 0) >= 1, "SQLite fsyncs the directory after creating its WAL"
    check, rows = sqlite_rows(mounter().mountpoint / "t.db")
    assert check == "ok"
    assert rows == (50 if survive else 0)


def test_the_control_channel_answers_bad_requests_with_errors(mounter: Mounter) -> None:
    m = mounter()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(str(m.control))
        stream = sock.makefile("rwb")
        for line in (
            b"not json\n",
            b'{"cmd": "reboot"}\n',
            b'{"cmd": "revert"}\n',
            b'{"cmd": "arm"}\n',
            b"[]\n",
        ):
            stream.write(line)
            stream.flush()
            assert "error" in json.loads(stream.readline()), line
    (m.mountpoint / "still").write_bytes(b"works")  # the file system is unharmed
    assert m.stats()["off"] is False
