"""Writing files so a reader never sees half of one, and a power cut leaves the old or the new.

Used for what the device and the cloud services write whole: the device's enrolled key
and certificate, the auth service's CA, signing keys and Mosquitto files (read by the
broker on SIGHUP).  The file gets its final mode before a byte is written, so a key is
never readable by others, not even briefly.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomic(path: Path, data: bytes | str, *, mode: int = 0o644) -> Path:
    """Write to a temporary file in the same folder, fsync, then rename over ``path``."""
    raw = data.encode() if isinstance(data, str) else data
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return path
