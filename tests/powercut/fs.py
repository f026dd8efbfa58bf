"""The power-cut file system: a FUSE pass-through mount that knows what a power cut would keep.

Run as its own process (a FUSE server inside the test process deadlocks as soon as the
test touches the mount from the thread that serves it)::

    python -m tests.powercut.fs BACKING MOUNTPOINT CONTROL_SOCKET

Every operation is done for real on ``BACKING`` (so the mount behaves like a disk with a
page cache) and fed to :class:`tests.powercut.model.DurabilityModel`, which knows what
is durable.  One lock orders the two.  The mount starts with everything in ``BACKING``
durable, as after a clean boot.

Control (:mod:`tests.powercut.mount` is the client): one JSON object per line on the
Unix socket, one JSON answer per line:

* ``{"cmd": "stats"}`` — counters per file (writes, bytes, fsync, fdatasync), directory
  fsyncs, pending operations, whether the power is off, the recent operation trace.
* ``{"cmd": "cut"}`` — the power goes *now*: every later operation fails with EIO (also
  reads: a dead disk).  Nothing is reverted yet.
* ``{"cmd": "arm", "suffix": ".db", "after": n}`` — cut at the n-th later write to a file
  whose name ends with ``suffix`` (that write is not done), e.g. in the middle of a WAL
  checkpoint, the only time SQLite writes its main file.
* ``{"cmd": "revert", "mode": "drop"|"prefix", "seed": s, "torn": bool}`` — only after a
  cut: rewrite ``BACKING`` to what the disk would hold after reboot.  The mount stays dead;
  unmount it and mount again to "boot".
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import socket
import sys
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mfusepy import FUSE, FuseOSError, Operations

from tests.powercut.model import DurabilityModel, Image

TRACE_LENGTH = 400


@dataclass
class FileCounters:
    writes: int = 0
    bytes: int = 0
    fsync: int = 0
    fdatasync: int = 0
    truncates: int = 0


class PowerCutOps(Operations):  # type: ignore[misc]
    use_ns = True

    def __init__(self, backing: Path) -> None:
        self.root = backing
        self.model = DurabilityModel()
        self._mutex = threading.RLock()
        self.off = False
        self.handles: dict[int, int] = {}
        """Open file handle (a file descriptor on BACKING) -> inode."""
        self.names: dict[int, str] = {}
        """Inode -> last known path (for the counters and the trace)."""
        self.counters: dict[str, FileCounters] = {}
        self.dir_fsyncs: dict[str, int] = {}
        self.trace: deque[str] = deque(maxlen=TRACE_LENGTH)
        self.trigger: tuple[str, int] | None = None
        self.cut_reason: str | None = None
        self._load()

    # -- start: everything on disk is durable --------------------------------------------

    def _load(self) -> None:
        files: dict[str, bytes] = {}
        dirs: set[str] = {""}
        for top, subdirs, names in os.walk(self.root):
            rel = os.path.relpath(top, self.root)
            rel = "" if rel == "." else rel
            for d in subdirs:
                dirs.add(os.path.join(rel, d))
            for n in names:
                path = os.path.join(rel, n)
                files[path] = Path(top, n).read_bytes()
        self.model.load(files, dirs)
        for path in files:
            ino = self.model.lookup(path)
            assert ino is not None
            self.names[ino] = path

    # -- helpers -------------------------------------------------------------------------

    def _real(self, path: str) -> str:
        return os.path.join(self.root, path.lstrip("/"))

    @staticmethod
    def _rel(path: str) -> str:
        return path.lstrip("/")

    def _alive(self) -> None:
        if self.off:
            raise FuseOSError(errno.EIO)

    def _ino(self, path: str | None, fh: int | None) -> int:
        if fh is not None and fh in self.handles:
            return self.handles[fh]
        ino = self.model.lookup(self._rel(path or ""))
        if ino is None:
            raise FuseOSError(errno.ENOENT)
        return ino

    def _count(self, ino: int) -> FileCounters:
        return self.counters.setdefault(self.names.get(ino, f"#{ino}"), FileCounters())

    def _note(self, text: str) -> None:
        self.trace.append(f"{self.model.opno} {text}")

    # -- metadata ------------------------------------------------------------------------

    def getattr(self, path: str | None, fh: int | None = None) -> dict[str, Any]:
        with self._mutex:
            if self.off and path != "/":
                raise FuseOSError(errno.EIO)
            try:
                st = (
                    os.fstat(fh)
                    if fh is not None and fh in self.handles
                    else os.lstat(self._real(path or "/"))
                )
            except OSError as exc:
                raise FuseOSError(exc.errno or errno.EIO) from exc
            return {
                key: getattr(st, key)
                for key in ("st_mode", "st_nlink", "st_size", "st_uid", "st_gid", "st_blocks", "st_ino")
            } | {"st_atime": st.st_atime_ns, "st_mtime": st.st_mtime_ns, "st_ctime": st.st_ctime_ns}

    def statfs(self, path: str) -> dict[str, int]:
        sv = os.statvfs(self.root)
        return {key: getattr(sv, key) for key in dir(sv) if key.startswith("f_")}

    def chmod(self, path: str, mode: int) -> int:
        with self._mutex:
            self._alive()
            os.chmod(self._real(path), mode)
            return 0

    def chown(self, path: str, uid: int, gid: int) -> int:
        with self._mutex:
            self._alive()
            os.chown(self._real(path), uid, gid)
            return 0

    def utimens(self, path: str, times: tuple[int, int] | None = None) -> int:
        with self._mutex:
            self._alive()
            os.utime(self._real(path), ns=times)
            return 0

    def access(self, path: str, amode: int) -> int:
        return 0

    # -- directories ---------------------------------------------------------------------

    def readdir(self, path: str | None, fh: int) -> list[str]:
        with self._mutex:
            self._alive()
            node = self.model.dirs.get(fh) or self.model.dirs[self._ino(path, None)]
            return [".", "..", *node.current]

    def opendir(self, path: str) -> int:
        with self._mutex:
            self._alive()
            return self._ino(path, None)

    def releasedir(self, path: str, fh: int) -> int:
        return 0

    def fsyncdir(self, path: str | None, datasync: int, fh: int) -> int:
        with self._mutex:
            self._alive()
            ino = fh if fh in self.model.dirs else self._ino(path, None)
            self.model.fsyncdir(ino)
            name = self.model.path_of(ino)
            name = f"#{ino}" if name is None else name
            self.dir_fsyncs[name] = self.dir_fsyncs.get(name, 0) + 1
            self._note(f"fsyncdir /{name}")
            return 0

    def mkdir(self, path: str, mode: int) -> int:
        with self._mutex:
            self._alive()
            os.mkdir(self._real(path), mode)
            self.model.mkdir(self._rel(path))
            self._note(f"mkdir {path}")
            return 0

    def rmdir(self, path: str) -> int:
        with self._mutex:
            self._alive()
            os.rmdir(self._real(path))
            self.model.rmdir(self._rel(path))
            self._note(f"rmdir {path}")
            return 0

    def unlink(self, path: str) -> int:
        with self._mutex:
            self._alive()
            os.unlink(self._real(path))
            self.model.unlink(self._rel(path))
            self._note(f"unlink {path}")
            return 0

    def rename(self, old: str, new: str) -> int:
        with self._mutex:
            self._alive()
            os.rename(self._real(old), self._real(new))
            ino = self.model.lookup(self._rel(old))
            self.model.rename(self._rel(old), self._rel(new))
            if ino is not None and ino in self.model.files:
                self.names[ino] = self._rel(new)
            self._note(f"rename {old} {new}")
            return 0

    def link(self, target: str, source: str) -> int:
        raise FuseOSError(errno.EPERM)  # not modelled; SQLite does not use hard links

    def symlink(self, target: str, source: str) -> int:
        raise FuseOSError(errno.EPERM)

    # -- files ---------------------------------------------------------------------------

    def create(self, path: str, mode: int, flags: int = os.O_RDWR) -> int:
        with self._mutex:
            self._alive()
            fd = os.open(self._real(path), flags | os.O_CREAT, mode)
            ino = self.model.lookup(self._rel(path))
            if ino is None:
                ino = self.model.create(self._rel(path))
                self._note(f"create {path}")
            self.names[ino] = self._rel(path)
            self.handles[fd] = ino
            return fd

    def open(self, path: str, flags: int) -> int:
        with self._mutex:
            self._alive()
            ino = self._ino(path, None)
            fd = os.open(self._real(path), flags & ~os.O_CREAT)
            self.handles[fd] = ino
            self.names[ino] = self._rel(path)
            if flags & os.O_TRUNC:
                self.model.set_size(ino, 0)
            return fd

    def release(self, path: str | None, fh: int) -> int:
        with self._mutex:
            # Closing a file is allowed on a dead disk: it frees our descriptor only.
            self.handles.pop(fh, None)
            os.close(fh)
            return 0

    def flush(self, path: str | None, fh: int) -> int:
        return 0

    def read(self, path: str | None, size: int, offset: int, fh: int) -> bytes:
        with self._mutex:
            self._alive()
            return os.pread(fh, size, offset)

    def write(self, path: str | None, data: bytes, offset: int, fh: int) -> int:
        with self._mutex:
            self._alive()
            ino = self._ino(path, fh)
            if self.trigger is not None and self.names.get(ino, "").endswith(self.trigger[0]):
                suffix, left = self.trigger
                if left <= 1:
                    self.trigger = None
                    self._cut(f"armed: a write to *{suffix}")
                    raise FuseOSError(errno.EIO)
                self.trigger = (suffix, left - 1)
            written = os.pwrite(fh, data, offset)
            self.model.write(ino, offset, data[:written])
            c = self._count(ino)
            c.writes += 1
            c.bytes += written
            return written

    def truncate(self, path: str | None, length: int, fh: int | None = None) -> int:
        with self._mutex:
            self._alive()
            ino = self._ino(path, fh)
            if fh is not None and fh in self.handles:
                os.ftruncate(fh, length)
            else:
                os.truncate(self._real(path or ""), length)
            self.model.set_size(ino, length)
            self._count(ino).truncates += 1
            self._note(f"truncate {self.names.get(ino)} {length}")
            return 0

    def fallocate(self, path: str | None, mode: int, offset: int, size: int, fh: int) -> int:
        with self._mutex:
            self._alive()
            if mode != 0:
                raise FuseOSError(errno.EOPNOTSUPP)
            ino = self._ino(path, fh)
            before = os.fstat(fh).st_size
            os.posix_fallocate(fh, offset, size)
            if offset + size > before:
                self.model.set_size(ino, offset + size)
            return 0

    def fsync(self, path: str | None, datasync: int, fh: int) -> int:
        with self._mutex:
            self._alive()
            ino = self._ino(path, fh)
            covered = self.model.fsync(ino)
            c = self._count(ino)
            if datasync:
                c.fdatasync += 1
            else:
                c.fsync += 1
            self._note(f"{'fdatasync' if datasync else 'fsync'} {self.names.get(ino)} ({covered} ops)")
            return 0

    # -- libfuse configuration -----------------------------------------------------------

    def init_with_config(self, conn_info: Any, config_3: Any) -> None:
        if config_3 is not None:
            # No kernel caching of names or attributes: a name we drop must really go, and
            # an unlinked open file is really unlinked (not renamed to .fuse_hidden*).
            config_3.entry_timeout = 0
            config_3.negative_timeout = 0
            config_3.attr_timeout = 0
            config_3.hard_remove = 1
            config_3.nullpath_ok = 1

    # -- the power ---------------------------------------------------------------------

    def _cut(self, reason: str) -> None:
        self.off = True
        self.cut_reason = reason
        self._note(f"CUT ({reason})")

    def command(self, request: dict[str, Any]) -> dict[str, Any]:
        cmd = request.get("cmd")
        with self._mutex:
            if cmd == "stats":
                return self._stats()
            if cmd == "cut":
                if not self.off:
                    self._cut("commanded")
                return self._stats()
            if cmd == "arm":
                self.trigger = (str(request["suffix"]), max(1, int(request["after"])))
                return {"armed": True}
            if cmd == "revert":
                if not self.off:
                    return {"error": "revert needs a cut first"}
                image = self.model.crash_image(
                    request.get("mode", "drop"),
                    seed=int(request.get("seed", 0)),
                    torn=bool(request.get("torn")),
                )
                self._write_image(image)
                return {
                    "kept_ops": image.kept_ops,
                    "dropped_ops": image.dropped_ops,
                    "dropped_bytes": image.dropped_bytes,
                    "torn": image.torn,
                    "files": {p: len(c) for p, c in image.files.items()},
                }
        return {"error": f"unknown command {cmd!r}"}

    def _stats(self) -> dict[str, Any]:
        return {
            "off": self.off,
            "cut_reason": self.cut_reason,
            "armed": self.trigger is not None,
            "pending_ops": self.model.pending_ops(),
            "pending_by_file": {
                self.names.get(ino, f"#{ino}"): len(node.pending)
                for ino, node in self.model.files.items()
                if node.pending
            },
            "opno": self.model.opno,
            "files": {p: asdict(c) for p, c in self.counters.items()},
            "dir_fsyncs": dict(self.dir_fsyncs),
            "trace": list(self.trace),
        }

    def _write_image(self, image: Image) -> None:
        """Make BACKING hold exactly ``image`` (the mount is dead: nobody else writes it)."""
        for entry in list(_walk(self.root)):
            rel = os.path.relpath(entry, self.root)
            if os.path.isdir(entry) and not os.path.islink(entry):
                if rel not in image.dirs:
                    shutil.rmtree(entry)
            elif rel not in image.files:
                os.unlink(entry)
        for d in sorted(image.dirs, key=lambda p: p.count("/")):
            if d:
                os.makedirs(os.path.join(self.root, d), exist_ok=True)
        for rel, content in image.files.items():
            Path(self.root, rel).write_bytes(content)


class _FUSE(FUSE):  # type: ignore[misc]
    """mfusepy drops the file handle of truncate() under libfuse 3: keep it (ftruncate of an
    open, possibly unlinked file)."""

    def truncate_fuse_3(self, path: bytes | None, length: int, fip: Any) -> int:
        fh = fip.contents.fh if fip else None
        name = None if path is None else path.decode(self.encoding, self.errors)
        return int(self.operations.truncate(name, length, fh))


def _walk(root: Path) -> Iterator[str]:
    """Every path under ``root``, deepest first (so a directory comes after its contents)."""
    for top, dirs, files in os.walk(root, topdown=False):
        for name in files:
            yield os.path.join(top, name)
        for name in dirs:
            yield os.path.join(top, name)


def serve_control(ops: PowerCutOps, sock_path: Path) -> None:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock_path.unlink(missing_ok=True)
    server.bind(str(sock_path))
    server.listen(4)

    def handle(conn: socket.socket) -> None:
        with conn, conn.makefile("rwb") as stream:
            for line in stream:
                try:
                    answer = ops.command(json.loads(line))
                except Exception as exc:  # a bad request must not take the file system down
                    answer = {"error": f"{type(exc).__name__}: {exc}"}
                stream.write(json.dumps(answer).encode() + b"\n")
                stream.flush()

    def accept() -> None:
        while True:
            conn, _ = server.accept()
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True, name="control").start()


def main(argv: list[str]) -> int:
    backing, mountpoint, control = (Path(a) for a in argv[1:4])
    logging.basicConfig(level=logging.WARNING)
    ops = PowerCutOps(backing)
    serve_control(ops, control)
    # Mode bits of a mount-created file are the caller's; we run as the same user.
    _FUSE(ops, str(mountpoint), foreground=True, nothreads=False, fsname="powercut")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
