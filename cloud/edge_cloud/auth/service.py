"""Everything a running auth service holds, built once (by ``edge-auth serve`` or a test)
and handed to the API: settings, database engine, signing keys, CA, limits, broker sync.

:func:`open_service` prepares the state folder, waits for the database, migrates it,
loads or makes the keys and the CA, and reconciles the broker files from the database.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlalchemy.engine import Connection, Engine

from edge_cloud.auth import api_keys, migrate
from edge_cloud.auth.api_keys import ApiKey
from edge_cloud.auth.broker_sync import BrokerSync
from edge_cloud.auth.ca import CertificateAuthority
from edge_cloud.auth.errors import NotAuthenticated
from edge_cloud.auth.ratelimit import FailureLimiter
from edge_cloud.auth.refusals import RefusalLog
from edge_cloud.auth.settings import AuthSettings
from edge_cloud.auth.signing_keys import KeyRing
from edge_cloud.auth.subjects import SubjectCheck
from edge_cloud.common.db import make_engine, wait_for_database
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
    settings: AuthSettings, *, clock: Callable[[], float] = time.time, reconcile: bool = True
) -> AuthService:
    settings.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    engine = make_engine(settings.database_url)
    wait_for_database(engine)
    migrate.upgrade(engine)
    now = clock()
    c = settings.certificates
    ca = CertificateAuthority(settings.ca_dir, name=c.ca_name, lifetime=c.ca_lifetime, now=now)
    service_ca = CertificateAuthority(
        settings.service_ca_dir, name=c.service_ca_name, lifetime=c.ca_lifetime, now=now
    )
    r = settings.rate_limit
    service = AuthService(
        settings=settings,
        engine=engine,
        keys=KeyRing(settings.signing_key_dir),
        ca=ca,
        service_ca=service_ca,
        limiter=FailureLimiter(
            per_account=r.account_failures, per_address=r.address_failures, window=r.window, clock=clock
        ),
        broker=BrokerSync(settings, engine, ca, service_ca, clock),
        clock=clock,
    )
    if reconcile:
        service.broker.apply()
    return service
