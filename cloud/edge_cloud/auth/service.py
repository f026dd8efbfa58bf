"""Everything a running auth service holds, built once (by ``edge-auth serve`` or a test)
and handed to the API: settings, database engine, signing keys, CA, limits, broker sync.

:func:`open_service` prepares the state folder, waits for the database, checks the state
(``installation``), migrates, makes the CA and keys for a new installation or loads them,
and reconciles: revocations deployed beside the broker files are re-applied to the
database (``revocation_record``), then the broker files are rendered.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlalchemy.engine import Connection, Engine

from edge_cloud.auth import api_keys, audit, installation, migrate, revocation_record
from edge_cloud.auth.api_keys import ApiKey
from edge_cloud.auth.broker_sync import BrokerSync
from edge_cloud.auth.ca import CertificateAuthority
from edge_cloud.auth.errors import NotAuthenticated, StateInvalid
from edge_cloud.auth.ratelimit import FailureLimiter
from edge_cloud.auth.refusals import RefusalLog
from edge_cloud.auth.settings import AuthSettings
from edge_cloud.auth.signing_keys import KeyRing
from edge_cloud.auth.subjects import SubjectCheck
from edge_cloud.common.jwt_verify import JWTVerifier


@dataclass
class AuthService:
    settings: AuthSettings
    engine: Engine
    keys: KeyRing
    ca: CertificateAuthority
    # Signs the cloud services' client certificates only: the service listener trusts this
    # CA alone, so a device certificate never gets onto the listener where client ids are free.
    service_ca: CertificateAuthority
    limiter: FailureLimiter
    broker: BrokerSync
    clock: Callable[[], float] = time.time
    verifier: JWTVerifier = field(init=False)
    subjects: SubjectCheck = field(init=False)
    # Failed logins and enrollments, 403s, 429s: audited at a bounded rate.
    refusals: RefusalLog = field(init=False)

    def __post_init__(self) -> None:
        t = self.settings.tokens
        self.verifier = JWTVerifier(self.keys.jwks(), issuer=t.issuer, audience=t.audience)
        self.subjects = SubjectCheck(self.engine, ttl=t.subject_check_ttl, clock=self.clock)
        self.refusals = RefusalLog(self.engine, self.clock)

    def now(self) -> float:
        return self.clock()

    @property
    def reserved_ids(self) -> set[str]:
        return {self.settings.broker.ingest_identity}

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    def api_key(self, presented: str, address: str) -> ApiKey:
        """The API key presented, or NotAuthenticated (failures count against the address)."""
        with self.limiter.guard(address, NotAuthenticated):
            with self.transaction() as conn:
                key = api_keys.authenticate(conn, presented, now=self.now())
            if key is None:
                raise NotAuthenticated("API key unknown, revoked or expired")
        return key

    def rotate_signing_key(self) -> str:
        key = self.keys.rotate()
        self.verifier.update(self.keys.jwks())
        return key.kid

    def close(self) -> None:
        self.engine.dispose()


def open_service(
    settings: AuthSettings,
    *,
    clock: Callable[[], float] = time.time,
    reconcile: bool = True,
    initialise: bool = False,
    new_service_ca: bool = False,
    new_signing_key: bool = False,
) -> AuthService:
    """The service on its state, made first if the state is entirely empty.

    ``initialise``: only a new installation is acceptable (``edge-auth init``).
    ``new_service_ca`` / ``new_signing_key``: the operator's explicit replacement of those
    (the old service CA folder is kept aside).  Anything else missing or broken is
    StateInvalid; an unreachable PostgreSQL StateUnavailable."""
    installation.prepare_files(settings)
    engine = installation.open_database(settings)
    try:
        return _open(settings, engine, clock, reconcile, initialise, new_service_ca, new_signing_key)
    except OSError as exc:  # a file the checks did not expect to fail (a restore left the wrong owner)
        engine.dispose()
        raise StateInvalid(
            f"{exc.filename or settings.state_dir}: {exc.strerror or exc}; the service's user must own its state"
        ) from exc
    except BaseException:
        engine.dispose()
        raise


def _open(
    settings: AuthSettings,
    engine: Engine,
    clock: Callable[[], float],
    reconcile: bool,
    initialise: bool,
    new_service_ca: bool,
    new_signing_key: bool,
) -> AuthService:
    with installation.database_errors(settings):
        empty = installation.database_is_empty(engine)
    evidence = installation.earlier_installation(settings)
    if empty and evidence:  # before migrating: an empty database must stay recognisably empty
        raise installation.refuse_empty_database(settings, evidence)
    new = empty
    if initialise and not new:
        raise StateInvalid(f"{installation.database_name(settings)}: already initialised; nothing done")
    with installation.database_errors(settings):
        migrate.upgrade(engine)
    now = clock()
    c = settings.certificates
    if new:
        CertificateAuthority.create(settings.ca_dir, name=c.ca_name, lifetime=c.ca_lifetime, now=now)
    if new or new_service_ca:
        _replace_service_ca(settings, now)
    ca = CertificateAuthority(settings.ca_dir)
    installation.check_deployed_ca(settings, ca)
    service_ca = CertificateAuthority(settings.service_ca_dir, lost=LOST_SERVICE_CA)
    key_dir = settings.signing_key_dir
    first = new or (new_signing_key and not any(key_dir.glob("*.pem")))  # every key lost: asked for
    keys = KeyRing(key_dir, create=first)
    if new_signing_key and not first:
        keys.rotate()
    if new:
        with engine.begin() as conn:
            audit.record(
                conn, at=now, actor="edge-auth", action="installation.created", target=str(settings.state_dir)
            )
    r = settings.rate_limit
    service = AuthService(
        settings=settings,
        engine=engine,
        keys=keys,
        ca=ca,
        service_ca=service_ca,
        limiter=FailureLimiter(
            per_account=r.account_failures, per_address=r.address_failures, window=r.window, clock=clock
        ),
        broker=BrokerSync(settings, engine, ca, service_ca, clock),
        clock=clock,
    )
    # Every command, not only serve: one that renders the files from a restored database
    # before serve ran would otherwise write that database's older view into the record.
    deployed = revocation_record.read_deployed(settings.broker.out_dir, ca, service_ca)
    with engine.begin() as conn:
        revocation_record.reapply(conn, deployed, now=now)
    if reconcile:
        service.broker.apply()
    return service


LOST_SERVICE_CA = (
    "restore it from the backup of the state, or make a new service CA with "
    "edge-auth init --new-service-ca (then restart Mosquitto and reissue edge-auth service-cert)"
)


def _replace_service_ca(settings: AuthSettings, now: float) -> None:
    directory = settings.service_ca_dir
    if CertificateAuthority.exists(directory):
        directory.rename(directory.with_name(f"{directory.name}.replaced-{int(now)}"))
    c = settings.certificates
    CertificateAuthority.create(directory, name=c.service_ca_name, lifetime=c.ca_lifetime, now=now)
