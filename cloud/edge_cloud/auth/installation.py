"""The durable state of an installation, checked before the service uses it.

An installation is made once, on an entirely empty state (``edge-auth init``, or the
first start): no database content, no CA, no signing key, no deployed broker files.
After that nothing is silently made again: a database that is empty while the rest of
the state shows an earlier installation is refused (rendering the broker files from it
would un-revoke every device), as is a missing or broken CA or key (``ca.py``,
``signing_keys.py``).  Every refusal is a :class:`StateInvalid` (exit 78) naming the file,
an unreachable PostgreSQL a :class:`StateUnavailable` (exit 75).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from cryptography import x509
from sqlalchemy.engine import Engine, make_url

from edge_cloud.auth import migrate
from edge_cloud.auth.ca import CertificateAuthority
from edge_cloud.auth.errors import StateInvalid, StateUnavailable
from edge_cloud.auth.revocation_record import RECORD_NAME
from edge_cloud.auth.settings import AuthSettings
from edge_cloud.auth.tables import audit_log, devices, operators
from edge_cloud.common.db import make_engine, normalise_url, refused_for_good, wait_for_database

log = logging.getLogger(__name__)

RESTORE_HINT = "docs/CLOUD_AUTH.md, backup and restore"


def database_name(settings: AuthSettings) -> str:
    """The SQLite file, or the URL without its password: what a message names."""
    url = make_url(normalise_url(settings.database_url))
    if url.get_backend_name() == "sqlite":
        return url.database or ":memory:"
    return url.render_as_string(hide_password=True)


def _is_sqlite(settings: AuthSettings) -> bool:
    return make_url(normalise_url(settings.database_url)).get_backend_name() == "sqlite"


def _sqlite_path(settings: AuthSettings) -> Path | None:
    url = make_url(normalise_url(settings.database_url))
    if not _is_sqlite(settings) or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database)


def prepare_files(settings: AuthSettings) -> None:
    """The private state folder (0700) exists and is writable; the SQLite database and its
    -wal/-shm are 0600 (SQLite gives the latter the database file's mode)."""
    state = settings.state_dir
    try:
        state.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise StateInvalid(f"{state}: cannot create the state folder: {exc.strerror or exc}") from exc
    if not os.access(state, os.W_OK):
        raise StateInvalid(f"{state}: not writable (a read-only file system or the wrong owner?)")
    if settings.broker.out_dir.is_relative_to(state):
        log.warning(
            "broker.out_dir %s is inside the private state_dir %s: Mosquitto's own user cannot read it, "
            "and opening the folder to it would expose the keys; move it beside (docs/CLOUD_AUTH.md)",
            settings.broker.out_dir,
            state,
        )
    db = _sqlite_path(settings)
    if db is None:
        return
    try:
        if not db.exists():
            db.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.close(os.open(db, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        for path in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
            if path.exists() and path.stat().st_mode & 0o077:
                path.chmod(0o600)  # made by an earlier version with the umask's 0644
    except OSError as exc:
        raise StateInvalid(f"{db}: cannot create or secure the database file: {exc.strerror or exc}") from exc
    if not os.access(db, os.W_OK):  # SQLite would open it read-only: every change a 500
        raise StateInvalid(f"{db}: not writable (the wrong owner or mode?); the service's user must own it")


@contextmanager
def database_errors(settings: AuthSettings) -> Iterator[None]:
    """SQLAlchemy's errors as one line naming the database: unreachable PostgreSQL is
    temporary (75); a corrupt, unreadable or read-only SQLite file is not (78)."""
    name = database_name(settings)
    try:
        yield
    except sa.exc.OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        if not _is_sqlite(settings):
            if refused_for_good(exc):  # waiting will not create the database or the role
                raise StateInvalid(
                    f"{name}: the server refused the connection ({reason}); "
                    "create the database or role, or fix database.url"
                ) from exc
            raise StateUnavailable(f"{name}: database unreachable ({reason}); try again") from exc
        raise StateInvalid(f"{name}: cannot use the database: {reason}") from exc
    except sa.exc.DatabaseError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise StateInvalid(
            f"{name}: not a usable database ({reason}); restore it from the backup ({RESTORE_HINT})"
        ) from exc


def open_database(settings: AuthSettings) -> Engine:
    engine = make_engine(settings.database_url)
    try:
        with database_errors(settings):
            if not _is_sqlite(settings):
                wait_for_database(engine, timeout=settings.database.wait)
            else:  # a file: nothing to wait for, and "locked" or "corrupt" will not pass
                with engine.connect() as conn:
                    conn.execute(sa.text("SELECT 1"))
    except BaseException:
        engine.dispose()
        raise
    return engine


def database_is_empty(engine: Engine) -> bool:
    """No schema, or not a single operator, device or audit record (initialising writes one)."""
    if migrate.current_revision(engine) is None:
        return True
    with engine.connect() as conn:
        return not any(
            conn.execute(sa.select(sa.exists().select_from(table))).scalar()
            for table in (audit_log, devices, operators)
        )


def earlier_installation(settings: AuthSettings) -> list[Path]:
    """The files that show this state once held an installation (empty for a new one)."""
    found = [
        path
        for directory in (settings.ca_dir, settings.service_ca_dir)
        for path in (directory / "ca.key", directory / "ca.pem")
        if path.exists()
    ]
    if settings.signing_key_dir.is_dir():
        found += sorted(settings.signing_key_dir.glob("*.pem"))
    out = settings.broker.out_dir
    found += [p for p in (out / RECORD_NAME, out / "crl.pem", out / "ca.pem") if p.exists()]
    return found


def check_deployed_ca(settings: AuthSettings, ca: CertificateAuthority) -> None:
    """The CA the deployed broker trusts is ``ca``.  A key and certificate from another
    installation (a wrong backup restored) match each other; rendering the broker files
    from them would make the broker refuse every enrolled device."""
    deployed = settings.broker.out_dir / "ca.pem"
    try:
        cert = x509.load_pem_x509_certificate(deployed.read_bytes())
    except FileNotFoundError:
        return  # none deployed yet: a new installation or a new broker folder
    except OSError as exc:
        raise StateInvalid(f"{deployed}: cannot read it: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise StateInvalid(
            f"{deployed}: not a PEM certificate ({exc}); restore it from a backup of the broker folder"
        ) from exc
    if cert != ca.cert:
        raise StateInvalid(
            f"{deployed}: the broker trusts another CA than {ca.directory / 'ca.pem'}: starting would "
            f"lock out every enrolled device; restore the CA that belongs with the broker files ({RESTORE_HINT})"
        )


def refuse_empty_database(settings: AuthSettings, evidence: list[Path]) -> StateInvalid:
    return StateInvalid(
        f"{database_name(settings)}: the database is empty, but {evidence[0]} shows an earlier "
        "installation: starting would un-revoke its devices; restore the database from the backup "
        f"({RESTORE_HINT}), or for a new installation move {settings.state_dir} and "
        f"{settings.broker.out_dir} away first"
    )
