"""What a disk keeps when the power goes: the durability model behind the power-cut file system.

Pure bookkeeping, no FUSE and no I/O, so its rules are tested on their own
(``test_model.py``) and the FUSE layer (:mod:`tests.powercut.fs`) only feeds it.

The rules, the strict POSIX reading that ext4 with ``data=ordered`` is kinder than:

* A file's *content* (data and size) is durable as of its last ``fsync`` or
  ``fdatasync`` (treated alike: on Linux both persist the size a later read needs).
  Writes, truncates and allocations since then are *pending*.
* A directory's *entries* (create, unlink, rename, mkdir, rmdir in it) are durable as of
  its last ``fsync`` of the directory itself.  Fsyncing a file does not make its name
  durable; a file whose name was never made durable vanishes, whatever was fsynced into it.
  A name unlinked or renamed away without a directory fsync comes back, with the content
  its inode had durably.
* Cutting the power keeps the durable state and, in the ``prefix`` mode, also a random
  prefix of the pending operations in the order they were made, across all files (a
  write cache flushing in order); with ``torn`` the prefix ends inside a write of several
  sectors, of which only the first 512-byte sectors made it.

Every operation gets a global number (``opno``), the order the cut honours.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Literal

SECTOR = 512

CutMode = Literal["drop", "prefix"]


@dataclass
class FileNode:
    ino: int
    durable: bytearray
    pending: list[tuple[int, tuple[object, ...]]] = field(default_factory=list)
    """(opno, op) since the last fsync; op = ("write", offset, data) | ("size", length)."""


@dataclass
class DirNode:
    ino: int
    durable: dict[str, int]
    current: dict[str, int]
    pending: list[tuple[int, tuple[object, ...]]] = field(default_factory=list)
    """(opno, op) since the last directory fsync; op = ("set", name, ino) | ("del", name)."""


@dataclass
class Image:
    """What survives a cut: the tree, and what was lost on the way."""

    files: dict[str, bytes]
    """Relative path -> content."""
    dirs: set[str]
    """Relative paths of the directories (the root is "")."""
    kept_ops: int
    dropped_ops: int
    dropped_bytes: int
    torn: str | None = None
    """Path of the file whose first lost write was torn (prefix mode with torn)."""


def _apply_file(buf: bytearray, op: tuple[object, ...], *, limit: int | None = None) -> None:
    if op[0] == "write":
        offset, data = op[1], op[2]
        assert isinstance(offset, int) and isinstance(data, bytes | bytearray)
        if limit is not None:
            data = data[:limit]
        end = offset + len(data)
        if len(buf) < offset:
            buf.extend(b"\0" * (offset - len(buf)))
        buf[offset:end] = data
    else:
        length = op[1]
        assert isinstance(length, int)
        if length < len(buf):
            del buf[length:]
        else:
            buf.extend(b"\0" * (length - len(buf)))


def _apply_dir(entries: dict[str, int], op: tuple[object, ...]) -> None:
    name = op[1]
    assert isinstance(name, str)
    if op[0] == "set":
        ino = op[2]
        assert isinstance(ino, int)
        entries[name] = ino
    else:
        entries.pop(name, None)


class DurabilityModel:
    """Inodes and directories with their durable and pending state."""

    ROOT = 1

    def __init__(self) -> None:
        self.files: dict[int, FileNode] = {}
        self.dirs: dict[int, DirNode] = {self.ROOT: DirNode(self.ROOT, {}, {})}
        self._next_ino = self.ROOT + 1
        self.opno = 0

    # -- building the initial (all durable) state ---------------------------------------

    def load(self, files: dict[str, bytes], dirs: set[str]) -> None:
        """Start from a tree on disk, all of it durable (the state after a clean boot)."""
        for d in sorted(dirs, key=lambda p: p.count("/")):
            if d:
                parent, name = self._split(d)
                ino = self._new_ino()
                self.dirs[ino] = DirNode(ino, {}, {})
                node = self.dirs[parent]
                node.durable[name] = node.current[name] = ino
        for path, content in files.items():
            parent, name = self._split(path)
            ino = self._new_ino()
            self.files[ino] = FileNode(ino, bytearray(content))
            node = self.dirs[parent]
            node.durable[name] = node.current[name] = ino

    # -- lookups -------------------------------------------------------------------------

    def lookup(self, path: str) -> int | None:
        """Inode of a relative path in the current namespace (None if absent)."""
        ino = self.ROOT
        for part in [p for p in path.split("/") if p]:
            node = self.dirs.get(ino)
            if node is None or part not in node.current:
                return None
            ino = node.current[part]
        return ino

    def path_of(self, ino: int) -> str | None:
        """Current path of an inode (None once it has no name)."""
        todo = [(self.ROOT, "")]
        while todo:
            here, prefix = todo.pop()
            if here == ino:
                return prefix
            for name, child in self.dirs[here].current.items():
                path = f"{prefix}/{name}" if prefix else name
                if child == ino:
                    return path
                if child in self.dirs:
                    todo.append((child, path))
        return None

    def _split(self, path: str) -> tuple[int, str]:
        parts = [p for p in path.split("/") if p]
        parent = self.lookup("/".join(parts[:-1]))
        if parent is None or parent not in self.dirs:
            raise FileNotFoundError(path)
        return parent, parts[-1]

    def _new_ino(self) -> int:
        ino = self._next_ino
        self._next_ino += 1
        return ino

    def _op(self) -> int:
        self.opno += 1
        return self.opno

    def _dir_op(self, parent: int, op: tuple[object, ...]) -> None:
        node = self.dirs[parent]
        _apply_dir(node.current, op)
        node.pending.append((self._op(), op))

    # -- namespace operations ------------------------------------------------------------

    def create(self, path: str) -> int:
        parent, name = self._split(path)
        ino = self._new_ino()
        self.files[ino] = FileNode(ino, bytearray())
        self._dir_op(parent, ("set", name, ino))
        return ino

    def mkdir(self, path: str) -> int:
        parent, name = self._split(path)
        ino = self._new_ino()
        self.dirs[ino] = DirNode(ino, {}, {})
        self._dir_op(parent, ("set", name, ino))
        return ino

    def unlink(self, path: str) -> None:
        parent, name = self._split(path)
        self._dir_op(parent, ("del", name))

    rmdir = unlink

    def rename(self, old: str, new: str) -> None:
        old_parent, old_name = self._split(old)
        new_parent, new_name = self._split(new)
        ino = self.dirs[old_parent].current[old_name]
        if old_parent == new_parent:
            # One atomic step in one directory: the new name and the old one go together.
            node = self.dirs[old_parent]
            op: tuple[object, ...] = ("rename", old_name, new_name, ino)
            node.current.pop(old_name, None)
            node.current[new_name] = ino
            node.pending.append((self._op(), op))
        else:
            self._dir_op(new_parent, ("set", new_name, ino))
            self._dir_op(old_parent, ("del", old_name))

    # -- content operations --------------------------------------------------------------

    def write(self, ino: int, offset: int, data: bytes) -> None:
        self.files[ino].pending.append((self._op(), ("write", offset, bytes(data))))

    def set_size(self, ino: int, length: int) -> None:
        self.files[ino].pending.append((self._op(), ("size", length)))

    def fsync(self, ino: int) -> int:
        """Make a file's content durable; returns how many operations that covered."""
        node = self.files[ino]
        for _, op in node.pending:
            _apply_file(node.durable, op)
        n = len(node.pending)
        node.pending.clear()
        return n

    def fsyncdir(self, ino: int) -> int:
        node = self.dirs[ino]
        for _, op in node.pending:
            _apply_dir_op(node.durable, op)
        n = len(node.pending)
        node.pending.clear()
        return n

    def pending_ops(self) -> int:
        return sum(len(n.pending) for n in self.files.values()) + sum(
            len(n.pending) for n in self.dirs.values()
        )

    # -- the cut -------------------------------------------------------------------------

    def crash_image(self, mode: CutMode = "drop", *, seed: int = 0, torn: bool = False) -> Image:
        """The tree a reboot would find.  Does not change the model."""
        pending = sorted(
            [opno for n in self.files.values() for opno, _ in n.pending]
            + [opno for n in self.dirs.values() for opno, _ in n.pending]
        )
        rng = random.Random(seed)
        big_writes = [
            opno
            for n in self.files.values()
            for opno, op in n.pending
            if op[0] == "write" and len(op[2]) >= 2 * SECTOR  # type: ignore[arg-type]
        ]
        if mode == "drop" or not pending:
            keep_upto = 0
        elif torn and big_writes:
            # Everything before a write of several sectors, and a part of that write.
            keep_upto = rng.choice(big_writes) - 1
        else:
            # Keep the first k pending operations, k uniform in 0..len (both ends included).
            k = rng.randint(0, len(pending))
            keep_upto = pending[k - 1] if k else 0
        first_lost = next((o for o in pending if o > keep_upto), None)
        image = Image({}, set(), 0, 0, 0)
        torn_ino: int | None = None

        contents: dict[int, bytes] = {}
        for ino, node in self.files.items():
            buf = bytearray(node.durable)
            for opno, op in node.pending:
                if opno <= keep_upto:
                    _apply_file(buf, op)
                    image.kept_ops += 1
                else:
                    if torn and opno == first_lost and op[0] == "write":
                        data = op[2]
                        assert isinstance(data, bytes)
                        sectors = rng.randint(1, max(1, (len(data) - 1) // SECTOR))
                        if sectors:
                            _apply_file(buf, op, limit=sectors * SECTOR)
                            torn_ino = ino
                    image.dropped_ops += 1
                    image.dropped_bytes += len(op[2]) if op[0] == "write" else 0  # type: ignore[arg-type]
            contents[ino] = bytes(buf)
        entries: dict[int, dict[str, int]] = {}
        for ino, dnode in self.dirs.items():
            d = dict(dnode.durable)
            for opno, op in dnode.pending:
                if opno <= keep_upto:
                    _apply_dir_op(d, op)
                    image.kept_ops += 1
                else:
                    image.dropped_ops += 1
            entries[ino] = d

        def walk(ino: int, prefix: str) -> None:
            image.dirs.add(prefix)
            for name, child in sorted(entries[ino].items()):
                path = f"{prefix}/{name}" if prefix else name
                if child in self.dirs:
                    walk(child, path)
                elif child in contents:
                    image.files[path] = contents[child]
                    if child == torn_ino:
                        image.torn = path

        walk(self.ROOT, "")
        return image


def _apply_dir_op(entries: dict[str, int], op: tuple[object, ...]) -> None:
    if op[0] == "rename":
        old, new, ino = op[1], op[2], op[3]
        assert isinstance(old, str) and isinstance(new, str) and isinstance(ino, int)
        if entries.get(old) == ino:
            del entries[old]
        entries[new] = ino
    else:
        _apply_dir(entries, op)
