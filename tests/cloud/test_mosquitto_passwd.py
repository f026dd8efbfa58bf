"""Our ``$7$`` lines are byte-for-byte the format of ``mosquitto_passwd`` (accepted by a real
broker in test_broker_mosquitto's password-mode test)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from edge_cloud.auth.mosquitto_passwd import hash_secret, line, verify_secret
from tests.conftest import require_binary


def test_mosquitto_passwd_output_verifies_with_ours_and_ours_has_its_shape(tmp_path: Path) -> None:
    tool = require_binary("mosquitto_passwd", "needs Mosquitto's tools (apt install mosquitto)")
    path = tmp_path / "pw"
    subprocess.run([tool, "-c", "-b", str(path), "dev-1", "s3cret value"], check=True, capture_output=True)
    user, stored = path.read_text().strip().split(":", 1)
    assert user == "dev-1"
    assert verify_secret(stored, "s3cret value")
    assert not verify_secret(stored, "s3cret valuE")
    ours = hash_secret("s3cret value")
    assert [len(p) for p in ours.split("$")] == [len(p) for p in stored.split("$")]
    assert ours.split("$")[:3] == stored.split("$")[:3] == ["", "7", "101"]


def test_garbage_hashes_do_not_verify_nor_raise() -> None:
    for bad in ("", "$7$", "$6$101$abc$def", "$7$x$abc$def", "$7$101$!!$??", "plain"):
        assert not verify_secret(bad, "anything")


def test_user_names_that_would_break_the_file_are_refused() -> None:
    import pytest

    for bad in ("a:b", "a\nb"):
        with pytest.raises(ValueError):
            line(bad, hash_secret("x"))
