"""``edge-auth``'s durable state (issue 14): made once, never silently replaced, refused
with one line naming the file when broken, and kept private (modes, broker files outside)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from typer.testing import CliRunner, Result

from edge_cloud.auth.ca import CertificateAuthority
from edge_cloud.auth.cli import app
from edge_cloud.auth.errors import StateInvalid
from edge_cloud.auth.revocation_record import RECORD_NAME
from edge_cloud.auth.tables import certificates, devices
from edge_cloud.common.errors import EX_CONFIG
from tests.cloud.conftest import Api
from tests.cloud.helpers import csr_pem, new_key
from tests.conftest import require_binary, under_ci
from tests.mosquitto import free_port, make_tls_files
from tests.tmpfs import small_tmpfs

EX_TEMPFAIL = 75


def write_config(tmp_path: Path, extra: str = "") -> Path:
    """No broker.out_dir: the default (beside the state) is part of what is tested."""
    config = tmp_path / "edge-auth.toml"
    config.write_text(f'state_dir = "state"\n{extra}')
    return config


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(app, list(args), env=env)


def one_line_refusal(result: Result, code: int, *said: str) -> None:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    for text in said:
        assert text in " ".join(result.output.split()), (text, result.output)


@pytest.fixture
def initialised(tmp_path: Path) -> Path:
    """An installation made by the first command on an empty state (as before ``init``)."""
    config = write_config(tmp_path)
    result = run("db", "upgrade", "-c", str(config))
    assert result.exit_code == 0, result.output
    return config


def test_init_makes_a_private_state_and_the_broker_files_beside_it(tmp_path: Path) -> None:
    initialised = write_config(tmp_path)
    result = run("init", "-c", str(initialised))
    assert result.exit_code == 0, result.output
    state, broker = tmp_path / "state", tmp_path / "edge-auth-broker"
    with sqlite3.connect(state / "auth.db") as conn:  # WAL mode: -wal and -shm while it is open
        conn.execute("SELECT count(*) FROM devices").fetchall()
        mode = {
            p.name: p.stat().st_mode & 0o777 for p in [state, *state.rglob("*"), broker, *broker.iterdir()]
        }
    conn.close()
    assert mode["state"] == 0o700 and mode["ca"] == 0o700 and mode["service-ca"] == 0o700
    assert mode["auth.db"] == mode["auth.db-wal"] == mode["auth.db-shm"] == 0o600
    assert mode["ca.key"] == 0o600 and mode["signing-keys"] == 0o700
    assert [m for name, m in mode.items() if name.endswith(".pem") and len(name) > 40] == [0o600]
    # The broker's group reads its files; nothing of the state is in its folder.
    assert mode["edge-auth-broker"] == 0o750 and mode["passwd"] == mode["server.key"] == 0o640
    assert {"ca.key", "auth.db"}.isdisjoint(p.name for p in broker.iterdir())
    one_line_refusal(run("init", "-c", str(initialised)), EX_CONFIG, "already initialised")


def test_a_database_made_by_an_earlier_version_with_mode_0644_is_made_0600(initialised: Path) -> None:
    db = initialised.parent / "state" / "auth.db"
    db.chmod(0o644)
    assert run("devices", "-c", str(initialised)).exit_code == 0
    assert db.stat().st_mode & 0o777 == 0o600


def test_without_a_configuration_nothing_is_created(tmp_path: Path) -> None:
    """It printed an empty table and made /var/lib/edge-auth (CA, keys, database)."""
    state = tmp_path / "default-state"
    result = run("devices", env={"AUTH_STATE_DIR": str(state)})
    assert result.exit_code == EX_CONFIG and "Traceback" not in result.output, result.output
    # The format of every configuration problem (edge-agent's too): a header, then one ✗ line each.
    problems = [line.strip() for line in result.output.splitlines() if line.strip().startswith("✗")]
    assert problems == ["✗ /etc/edge-auth/edge-auth.toml: file not found; create it or pass --config PATH"]
    assert not state.exists()


def _other_ca_pem(path: Path) -> bytes:
    return make_tls_files(path.parent.parent.parent / "other-ca").ca_cert.read_bytes()  # beside the state


def _garbage(_path: Path) -> bytes:
    return b"-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n"


def _half(path: Path) -> bytes:
    data = path.read_bytes()
    return data[: len(data) // 2]


def _rsa_key(_path: Path) -> bytes:
    from cryptography.hazmat.primitives.asymmetric import rsa

    return rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _signing_key(state: Path) -> Path:
    return next((state / "signing-keys").glob("*.pem"))


BREAKAGES: dict[str, tuple[Callable[[Path], Path], Callable[[Path], bytes] | None, str]] = {
    # name: (which file, its new content or None to remove it, what the refusal says)
    "ca.key removed": (lambda s: s / "ca" / "ca.key", None, "ca.key: missing; restore it from the backup"),
    "ca.pem removed": (lambda s: s / "ca" / "ca.pem", None, "ca.pem: missing; restore it from the backup"),
    "ca.pem of another CA": (lambda s: s / "ca" / "ca.pem", _other_ca_pem, "ca.pem: does not match ca.key"),
    "service ca.pem of another CA": (
        lambda s: s / "service-ca" / "ca.pem",
        _other_ca_pem,
        "service-ca/ca.pem: does not match ca.key",
    ),
    "service ca.key removed": (
        lambda s: s / "service-ca" / "ca.key",
        None,
        "edge-auth init --new-service-ca",
    ),
    "garbage ca.key": (lambda s: s / "ca" / "ca.key", _garbage, "ca.key: not a PEM private key"),
    "garbage ca.pem": (lambda s: s / "ca" / "ca.pem", _garbage, "ca.pem: not a PEM certificate"),
    "garbage signing key": (_signing_key, _garbage, ".pem: not a PEM private key"),
    "RSA signing key": (_signing_key, _rsa_key, ".pem: not an Ed25519 key"),
    "signing key removed": (_signing_key, None, "signing-keys: no signing key"),
    "corrupt database": (
        lambda s: s / "auth.db",
        lambda p: b"\x00garbage" * 512,
        "auth.db: not a usable database",
    ),
    "truncated database": (lambda s: s / "auth.db", _half, "auth.db: not a usable database"),
}


@pytest.mark.parametrize("breakage", list(BREAKAGES))
def test_broken_state_is_one_line_naming_the_file_and_exit_78_never_a_new_one(
    initialised: Path, breakage: str
) -> None:
    state = initialised.parent / "state"
    which, content, said = BREAKAGES[breakage]
    assert run("create-device", "dev-1", "-c", str(initialised)).exit_code == 0
    path = which(state)

    def others() -> dict[Path, bytes]:
        return {
            p: p.read_bytes()
            for p in state.rglob("*")
            if p.is_file() and p != path and "auth.db" not in p.name
        }

    before = others()
    if content is None:
        path.unlink()
    else:
        new = content(path)
        for suffix in ("-wal", "-shm"):
            (path.parent / f"{path.name}{suffix}").unlink(missing_ok=True)
        path.write_bytes(new)
    for command in ("devices", "serve"):
        one_line_refusal(run(command, "-c", str(initialised)), EX_CONFIG, said)
    # Nothing was made or replaced: every other file is as it was, the broken one too.
    assert others() == before
    assert path.exists() == (content is not None)


def test_a_new_service_ca_only_when_asked(initialised: Path) -> None:
    state = initialised.parent / "state"
    shutil.rmtree(state / "service-ca")
    one_line_refusal(run("devices", "-c", str(initialised)), EX_CONFIG, "init --new-service-ca")
    result = run("init", "--new-service-ca", "-c", str(initialised))
    assert result.exit_code == 0, result.output
    assert (state / "service-ca" / "ca.key").exists()
    old = (state / "service-ca" / "ca.pem").read_bytes()
    assert run("init", "--new-service-ca", "-c", str(initialised)).exit_code == 0
    assert (state / "service-ca" / "ca.pem").read_bytes() != old
    assert len(list(state.glob("service-ca.replaced-*"))) == 1  # the old one kept aside
    assert run("devices", "-c", str(initialised)).exit_code == 0


def test_a_lost_signing_key_is_replaced_only_by_rotate_signing_key(initialised: Path) -> None:
    state = initialised.parent / "state"
    _signing_key(state).unlink()
    one_line_refusal(run("devices", "-c", str(initialised)), EX_CONFIG, "edge-auth rotate-signing-key")
    assert run("rotate-signing-key", "-c", str(initialised)).exit_code == 0
    assert len(list((state / "signing-keys").glob("*.pem"))) == 1
    assert run("devices", "-c", str(initialised)).exit_code == 0


def test_a_read_only_state_folder_is_one_line_and_exit_78(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "mnt", "4m") as mnt:
        config = mnt / "edge-auth.toml"
        config.write_text('state_dir = "state"\n')
        assert run("create-device", "dev-1", "-c", str(config)).exit_code == 0
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
        one_line_refusal(run("devices", "-c", str(config)), EX_CONFIG, f"{mnt / 'state'}: not writable")


def _serve(config: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Through the real command: the exit status and stderr a service manager sees."""
    return subprocess.run(
        [sys.executable, "-m", "edge_cloud.auth", "serve", "-c", str(config)],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        timeout=timeout,
    )


def test_an_unreachable_postgresql_is_one_line_and_exit_75(tmp_path: Path) -> None:
    """Through the real command: the exit status and stderr a service manager sees."""
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/edge_auth"
    config = write_config(tmp_path, f'[database]\nurl = "{url}"\nwait = "1s"\n')
    result = _serve(config)
    assert result.returncode == EX_TEMPFAIL, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "127.0.0.1" in result.stderr and "database unreachable" in result.stderr


def test_a_postgresql_database_that_does_not_exist_is_exit_78_at_once(
    tmp_path: Path, postgres_available: str | None
) -> None:
    """The server answers "no such database": configuration, not worth a retry loop."""
    if postgres_available:
        if under_ci():
            pytest.fail(f"under CI every dependency must be present: {postgres_available}")
        pytest.skip(postgres_available)
    url = f"postgresql://postgres@127.0.0.1:5432/edge_auth_missing_{os.getpid()}"
    config = write_config(tmp_path, f'[database]\nurl = "{url}"\nwait = "60s"\n')
    result = _serve(config, timeout=45)  # well inside database.wait: it must not be waiting at all
    assert result.returncode == EX_CONFIG, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "does not exist" in result.stderr and "fix database.url" in result.stderr


def test_broker_config_out_says_loudly_that_it_is_a_snapshot(initialised: Path, tmp_path: Path) -> None:
    help_text = " ".join(run("broker-config", "--help").output.split())
    assert "With --out DIR: a ONE-OFF SNAPSHOT; serve never updates DIR" in help_text
    result = run("broker-config", "--out", str(tmp_path / "snap"), "--no-reload", "-c", str(initialised))
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert f"warning: {tmp_path / 'snap'} is a one-off snapshot" in said
    assert "will not see later revocations" in said
    # Into the configured folder it is no snapshot, and nothing warns.
    result = run("broker-config", "--no-reload", "-c", str(initialised))
    assert result.exit_code == 0 and "snapshot" not in result.output


def test_broker_files_inside_the_private_state_are_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = write_config(tmp_path, '[broker]\nout_dir = "state/broker"\n')
    with caplog.at_level(logging.WARNING, logger="edge_cloud.auth.installation"):
        assert run("broker-config", "--no-reload", "-c", str(config)).exit_code == 0
    assert [r.getMessage().split(":")[0] for r in caplog.records] == [
        f"broker.out_dir {tmp_path / 'state' / 'broker'} is inside the private state_dir {tmp_path / 'state'}"
    ]


def test_without_the_record_the_deployed_crl_stands_in_for_it(api: Api) -> None:
    """Files written by a version before revoked.json, then a database that forgot the
    revocation: the CRL's entries stay.  A CRL of another CA is refused, not trusted."""
    service = api.service
    r = api.client.post("/v1/devices", json={"id": "dev-1"}, headers=api.admin())
    r = api.client.post("/v1/enroll", json={"token": r.json()["enrollment_token"], "csr": csr_pem(new_key())})
    serial = x509.load_pem_x509_certificate(r.json()["certificate"].encode()).serial_number
    assert api.client.post("/v1/devices/dev-1/revoke", headers=api.admin()).status_code == 200
    out = service.settings.broker.out_dir
    (out / RECORD_NAME).unlink(missing_ok=True)  # the old code wrote none
    with service.transaction() as conn:  # what a database restored from before the revocation says
        conn.execute(certificates.update().values(revoked_at=None))
        conn.execute(devices.update().values(status="active"))
    service.broker.apply(signal_broker=False)
    assert serial in {e.serial_number for e in x509.load_pem_x509_crl((out / "crl.pem").read_bytes())}
    assert format(serial, "x") in json.loads((out / RECORD_NAME).read_text())["serials"]
    (out / RECORD_NAME).unlink()
    (out / "crl.pem").write_bytes(_foreign_crl(tmp_dir=out.parent))
    with pytest.raises(StateInvalid, match=r"crl.pem: not signed by the CA in .*ca.pem"):
        service.broker.apply(signal_broker=False)


def _foreign_crl(tmp_dir: Path) -> bytes:
    other = CertificateAuthority.create(tmp_dir / "other-ca", name="other", lifetime=86400, now=time.time())
    return other.crl([], now=time.time(), lifetime=3600, number=1).encode()


def test_a_whole_ca_of_another_installation_is_refused_not_deployed(
    initialised: Path, tmp_path: Path
) -> None:
    """Both ``ca.key`` and ``ca.pem`` from another installation (a wrong backup restored):
    they match each other, so only the CA the broker trusts tells.  It started, replaced
    the broker's ca.pem and server certificate and reloaded: every device failed TLS."""
    (tmp_path / "other").mkdir()
    other = write_config(tmp_path / "other")
    assert run("init", "-c", str(other)).exit_code == 0
    assert run("broker-config", "--no-reload", "-c", str(initialised)).exit_code == 0  # deployed
    state, broker = initialised.parent / "state", initialised.parent / "edge-auth-broker"
    shutil.rmtree(state / "ca")
    shutil.copytree(other.parent / "state" / "ca", state / "ca")
    deployed = {p.name: p.read_bytes() for p in broker.iterdir()}
    for command in ("devices", "broker-config", "serve"):
        one_line_refusal(
            run(command, "-c", str(initialised)),
            EX_CONFIG,
            f"{broker / 'ca.pem'}: the broker trusts another CA than {state / 'ca' / 'ca.pem'}",
        )
    assert {p.name: p.read_bytes() for p in broker.iterdir()} == deployed


def _without_root_powers(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The real command as a service's own user meets file modes: root ignores them, so
    as root it runs without the capabilities that override them."""
    prefix: list[str] = []
    if os.geteuid() == 0:
        setpriv = require_binary("setpriv", "it drops root's file-permission override (util-linux)")
        drop = "-dac_override,-dac_read_search"
        prefix = [setpriv, f"--inh-caps={drop}", f"--bounding-set={drop}"]
    return subprocess.run(
        [*prefix, sys.executable, "-m", "edge_cloud.auth", *args, "-c", str(config)],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "300"},
        timeout=30,  # serve refuses at once, or (the old code) serves until killed
    )


UNUSABLE: dict[str, tuple[str, int, str, str]] = {
    # name: (what, its new mode, command, what the refusal says (the state folder's path follows it))
    "a CA folder the service cannot read": ("ca", 0o000, "devices", "ca/ca.key: Permission denied"),
    "a read-only database file": ("auth.db", 0o400, "serve", "auth.db: not writable"),
    # It said "no signing key ... make a new key with rotate-signing-key", voiding every token.
    "a signing key folder the service cannot read": (
        "signing-keys",
        0o000,
        "devices",
        "signing-keys: cannot read the signing keys",
    ),
    "a read-only broker folder": ("../edge-auth-broker", 0o550, "serve", "cannot write the broker files"),
}


@pytest.mark.parametrize("case", list(UNUSABLE))
def test_state_the_service_cannot_use_is_one_line_and_exit_78(initialised: Path, case: str) -> None:
    """A restore as root leaves files the service's user cannot read or write: a traceback,
    or (read-only database) a service that starts and fails every change with a 500."""
    what, mode, command, said = UNUSABLE[case]
    assert run("broker-config", "--no-reload", "-c", str(initialised)).exit_code == 0
    path = initialised.parent / "state" / what
    for suffix in ("-wal", "-shm"):  # a clean stop leaves none; SQLite would not open them read-only
        path.with_name(path.name + suffix).unlink(missing_ok=True)
    old = path.stat().st_mode & 0o7777
    path.chmod(mode)
    try:
        result = _without_root_powers(initialised, command)
    finally:
        path.chmod(old)
    assert result.returncode == EX_CONFIG, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert said in result.stderr, result.stderr
