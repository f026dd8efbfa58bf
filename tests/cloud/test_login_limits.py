"""The login limiter under real concurrency, and logins the database would refuse (issue 14,
items 3 and 7) — on SQLite and PostgreSQL.

The attacks: 40 simultaneous logins for one account from one address all passed the
limiter's check before the first failure was counted (39 × 401 and a 200, 40 passwords
checked); and on PostgreSQL a user name with a NUL, or longer than the column, was a 422
every time: never counted, never audited, argon2 run anyway.

The number of argon2 verifications is counted by a PasswordHasher that does the real
verification and counts it.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher

from edge_cloud.auth import operators, passwords
from edge_cloud.auth.errors import RateLimited
from edge_cloud.auth.ratelimit import FailureLimiter, address_key
from edge_cloud.auth.service import AuthService
from tests.cloud.conftest import Api
from tests.cloud.helpers import ADMIN, ADMIN_PASSWORD
from tests.cloud.served import serve


class CountingHasher(PasswordHasher):
    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self.verified = 0

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        with self._lock:
            self.verified += 1
        return super().verify(hash, password)


@pytest.fixture
def hasher(monkeypatch: pytest.MonkeyPatch) -> CountingHasher:
    counting = CountingHasher()
    monkeypatch.setattr(passwords, "_HASHER", counting)
    return counting


@pytest.fixture
def served_url(service: AuthService) -> Iterator[str]:
    with service.transaction() as conn:
        operators.create_operator(
            conn, username=ADMIN, password=ADMIN_PASSWORD, scopes=["admin"], now=service.now(), actor="test"
        )
    with serve(service) as (url, _recorder):
        yield url


def _all_at_once(url: str, forms: list[dict[str, str]]) -> list[int]:
    """POST every form to /v1/token at the same moment, each from its own thread and connection."""
    start = threading.Barrier(len(forms))

    def one(form: dict[str, str]) -> int:
        with httpx.Client(base_url=url, timeout=120) as client:
            start.wait()
            return client.post("/v1/token", data={"grant_type": "password", **form}).status_code

    with ThreadPoolExecutor(max_workers=len(forms)) as pool:
        return list(pool.map(one, forms))


def test_simultaneous_guesses_at_one_account_check_at_most_the_limit(
    served_url: str, service: AuthService, hasher: CountingHasher
) -> None:
    limit = service.settings.rate_limit.account_failures
    codes = _all_at_once(served_url, [{"username": ADMIN, "password": f"guess {i:04}"} for i in range(40)])
    assert Counter(codes) == {401: limit, 429: 40 - limit}
    assert hasher.verified == limit
    # The account is locked for the window, the right password included.
    r = httpx.post(
        f"{served_url}/v1/token",
        data={"grant_type": "password", "username": ADMIN, "password": ADMIN_PASSWORD},
    )
    assert r.status_code == 429 and hasher.verified == limit


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the limiter is the same on both
def test_simultaneous_guesses_from_one_address_check_at_most_its_limit(
    served_url: str, service: AuthService, hasher: CountingHasher
) -> None:
    limit = service.settings.rate_limit.address_failures
    forms = [{"username": f"user{i}", "password": "guess 12345678"} for i in range(3 * limit)]
    codes = _all_at_once(served_url, forms)
    assert Counter(codes) == {401: limit, 429: 2 * limit}
    assert hasher.verified == limit


def test_a_success_gives_its_place_back_and_forgets_the_account_failures(
    api: Api, hasher: CountingHasher
) -> None:
    def login(password: str) -> int:
        form = {"grant_type": "password", "username": ADMIN, "password": password}
        return api.client.post("/v1/token", data=form).status_code

    assert [login("wrong guess 123") for _ in range(4)] == [401] * 4
    assert [login(ADMIN_PASSWORD) for _ in range(3)] == [200] * 3  # successes take no place
    assert [login("wrong guess 123") for _ in range(6)] == [401] * 5 + [429]
    assert hasher.verified == 12


INVALID_NAMES = ["a" * 200, "admin\x00", "\x00", "x" * 65, "admin\n"]


def _login_as(api: Api, username: str) -> httpx.Response:
    form = {"grant_type": "password", "username": username, "password": "wrong guess 123"}
    return api.client.post("/v1/token", data=form)


def test_an_invalid_user_name_is_a_counted_and_audited_failure_without_argon2(
    api: Api, hasher: CountingHasher
) -> None:
    limit = api.service.settings.rate_limit.address_failures
    codes = [_login_as(api, INVALID_NAMES[i % len(INVALID_NAMES)]).status_code for i in range(limit + 3)]
    assert codes == [401] * limit + [429] * 3
    assert hasher.verified == 0
    audit: list[dict[str, Any]] = api.client.get("/v1/audit?limit=1000", headers=api.admin()).json()
    failed = [e for e in audit if e["action"] == "login.failed"]
    assert len(failed) == limit and {e["actor"] for e in failed} == {"?"}
    assert {e["address"] for e in failed} == {"testclient"}
    assert "admin\x00" in {json.loads(e["detail"])["username"] for e in failed}


def test_an_api_key_the_database_would_refuse_is_a_counted_failure(api: Api) -> None:
    limit = api.service.settings.rate_limit.address_failures
    codes = [
        api.client.post(
            "/v1/token", data={"grant_type": "client_credentials", "client_secret": f"eak_\x00{i}.secret"}
        ).status_code
        for i in range(limit)
    ]
    codes.append(api.client.get("/v1/devices", headers={"Authorization": "Bearer eak_zz.secret"}).status_code)
    assert codes == [401] * limit + [429]


def test_guesses_from_rotating_addresses_of_one_ipv6_64_share_one_limit() -> None:
    # An IPv6 host picks any address of its /64: counted per address, every guess would
    # come from a fresh one and the address limit would never be reached.
    now = [0.0]
    limiter = FailureLimiter(per_account=1000, per_address=3, window=60.0, clock=lambda: now[0])
    for i in range(3):
        limiter.failed(f"user{i}", f"2001:db8:1:2::{i + 1:x}")
    with pytest.raises(RateLimited):
        limiter.check("user9", "2001:db8:1:2:ffff:abcd:1234:5678")
    limiter.check("user9", "2001:db8:1:3::1")  # the next /64 is someone else
    # An IPv4-mapped address is its IPv4 address; an IPv4 address is itself.
    for i in range(3):
        limiter.failed(f"user{i}", "::ffff:192.0.2.7")
    with pytest.raises(RateLimited):
        limiter.check("user9", "192.0.2.7")
    limiter.check("user9", "192.0.2.8")
    assert address_key("unknown") == "unknown"
