"""Operator management (issue 14, item 5) — on SQLite and PostgreSQL.

The attack: an operator disabled in the database kept passing ``GET /v1/audit`` and
``POST /v1/devices`` with its JWT; deleted, its JWT worked until expiry and an admin API
key it had issued worked for ever.  Now every authenticated request checks the token's
subject (cached ``tokens.subject_check_ttl``), and disabling or deleting an operator
revokes its refresh tokens and the API keys it issued.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from edge_cloud.auth.cli import app as cli_app
from edge_cloud.auth.operators import create_operator
from edge_cloud.auth.tables import operators
from tests.cloud.conftest import Api
from tests.cloud.helpers import ADMIN, ADMIN_PASSWORD
from tests.cloud.test_tokens import bearer, login

OPS = "ops"
OPS_PASSWORD = "operations password 1"
TTL = 5.0  # the default tokens.subject_check_ttl (test_the_cli_… checks it)


@dataclass
class Held:
    """Every credential an operator can hold, and what each one is for."""

    access: str
    refresh: str
    key: str  # an admin API key the operator issued
    key_of_key: str  # an API key that key issued
    key_access: str  # an access token the key got (client_credentials)

    def bearers(self) -> dict[str, str]:
        return {"access token": self.access, "API key": self.key, "key's key": self.key_of_key,
                "key's access token": self.key_access}  # fmt: skip


def _new_key(api: Api, token: str, name: str) -> str:
    r = api.client.post("/v1/api-keys", json={"name": name, "scopes": ["admin"]}, headers=bearer(token))
    assert r.status_code == 201, r.text
    key: str = r.json()["key"]
    return key


@pytest.fixture
def ops(api: Api) -> Iterator[Held]:
    with api.service.transaction() as conn:
        create_operator(
            conn, username=OPS, password=OPS_PASSWORD, scopes=["admin"], now=api.service.now(), actor="test"
        )
    status, body = login(api, OPS, OPS_PASSWORD)
    assert status == 200
    key = _new_key(api, body["access_token"], "ops script")
    key_of_key = _new_key(api, key, "made by the script")
    r = api.client.post("/v1/token", data={"grant_type": "client_credentials", "client_secret": key})
    assert r.status_code == 200
    held = Held(body["access_token"], body["refresh_token"], key, key_of_key, r.json()["access_token"])
    for what, token in held.bearers().items():
        assert _uses(api, token) == [200, 201], what
    # Later changes in a later second (and by little: tokens issued after it must not be
    # "not yet valid" against the real clock, which the verifier uses).
    api.service.clock.advance(2)  # type: ignore[attr-defined]
    yield held


_devices = iter(range(1_000_000))


def _uses(api: Api, token: str) -> list[int]:
    """The two calls of the report: read the audit log, create a device."""
    audit = api.client.get("/v1/audit", headers=bearer(token)).status_code
    device = api.client.post("/v1/devices", json={"id": f"dev-{next(_devices)}"}, headers=bearer(token))
    return [audit, device.status_code]


def _refresh(api: Api, refresh: str) -> int:
    return api.client.post(
        "/v1/token", data={"grant_type": "refresh_token", "refresh_token": refresh}
    ).status_code


def _audit(api: Api, action: str) -> list[dict[str, Any]]:
    entries = api.client.get("/v1/audit?limit=1000", headers=api.admin()).json()
    return [e for e in entries if e["action"] == action]


def _assert_all_refused(api: Api, held: Held) -> None:
    for what, token in held.bearers().items():
        assert _uses(api, token) == [401, 401], what
    assert _refresh(api, held.refresh) == 401


def test_disabling_an_operator_ends_every_credential_it_holds_at_once(api: Api, ops: Held) -> None:
    r = api.client.post(f"/v1/operators/{OPS}/disable", headers=api.admin())
    assert r.status_code == 200 and r.json()["disabled"] is True
    _assert_all_refused(api, ops)
    assert login(api, OPS, OPS_PASSWORD)[0] == 401
    (record,) = _audit(api, "operator.disabled")
    assert record["actor"] == ADMIN and record["target"] == OPS and record["address"] == "testclient"
    assert '"refresh_tokens_revoked": 1' in record["detail"]
    assert len(_audit(api, "api_key.revoked")) == 2
    # Enabled again: a new login works, what was revoked stays revoked.
    assert api.client.post(f"/v1/operators/{OPS}/enable", headers=api.admin()).json()["disabled"] is False
    _assert_all_refused(api, ops)
    status, body = login(api, OPS, OPS_PASSWORD)
    assert status == 200 and _uses(api, body["access_token"]) == [200, 201]


def test_deleting_an_operator_ends_every_credential_and_a_new_one_of_that_name_inherits_none(
    api: Api, ops: Held
) -> None:
    assert api.client.delete(f"/v1/operators/{OPS}", headers=api.admin()).status_code == 204
    _assert_all_refused(api, ops)
    (record,) = _audit(api, "operator.deleted")
    assert record["actor"] == ADMIN and record["target"] == OPS
    assert api.client.delete(f"/v1/operators/{OPS}", headers=api.admin()).status_code == 404
    r = api.client.post(
        "/v1/operators",
        json={"username": OPS, "password": "another password 2", "scopes": ["devices:read"]},
        headers=api.admin(),
    )
    assert r.status_code == 201
    _assert_all_refused(api, ops)  # the old admin token is not the new reader's


def test_an_operator_disabled_or_deleted_in_the_database_is_refused_within_the_ttl(
    api: Api, ops: Held
) -> None:
    """What the report did: the change made behind the service's back (another process)."""
    ttl = TTL
    with api.service.transaction() as conn:
        conn.execute(operators.update().where(operators.c.username == OPS).values(disabled=True))
    api.service.clock.advance(ttl)  # type: ignore[attr-defined]
    assert _uses(api, ops.access) == [401, 401]
    with api.service.transaction() as conn:
        conn.execute(operators.update().where(operators.c.username == OPS).values(disabled=False))
    api.service.clock.advance(ttl)  # type: ignore[attr-defined]
    assert _uses(api, ops.access) == [200, 201]
    with api.service.transaction() as conn:
        conn.execute(sa.delete(operators).where(operators.c.username == OPS))
    api.service.clock.advance(ttl)  # type: ignore[attr-defined]
    assert _uses(api, ops.access) == [401, 401]


def test_an_admin_creates_and_lists_operators(api: Api) -> None:
    body = {"username": OPS, "password": OPS_PASSWORD, "scopes": ["devices:read", "events:read"]}
    r = api.client.post("/v1/operators", json=body, headers=api.admin())
    assert r.status_code == 201, r.text
    assert {k: r.json()[k] for k in ("username", "scopes", "disabled")} == {
        "username": OPS, "scopes": ["devices:read", "events:read"], "disabled": False
    }  # fmt: skip
    assert api.client.post("/v1/operators", json=body, headers=api.admin()).status_code == 409
    for bad in ({**body, "username": "a\nb"}, {**body, "password": "short"}, {**body, "scopes": ["root"]}):
        assert api.client.post("/v1/operators", json=bad, headers=api.admin()).status_code == 422
    listed = api.client.get("/v1/operators", headers=api.admin()).json()
    assert [(o["username"], o["scopes"]) for o in listed] == [
        (ADMIN, ["admin"]), (OPS, ["devices:read", "events:read"])
    ]  # fmt: skip
    assert "password" not in str(listed)
    assert [e["actor"] for e in _audit(api, "operator.created") if e["target"] == OPS] == [ADMIN]


def test_the_last_active_administrator_stays(api: Api) -> None:
    for call in (api.client.post(f"/v1/operators/{ADMIN}/disable", headers=api.admin()),
                 api.client.delete(f"/v1/operators/{ADMIN}", headers=api.admin())):  # fmt: skip
        assert call.status_code == 409 and "last active administrator" in call.json()["detail"]
    listed = api.client.get("/v1/operators", headers=api.admin()).json()
    assert [(o["username"], o["disabled"]) for o in listed] == [(ADMIN, False)]


def test_only_an_admin_manages_operators(api: Api, ops: Held) -> None:
    api.client.post(
        "/v1/operators",
        json={"username": "reader", "password": "reader password 3", "scopes": ["devices:read"]},
        headers=api.admin(),
    )
    token = login(api, "reader", "reader password 3")[1]["access_token"]
    for method, path in (("GET", "/v1/operators"), ("POST", f"/v1/operators/{OPS}/disable"),
                         ("DELETE", f"/v1/operators/{OPS}")):  # fmt: skip
        assert api.client.request(method, path, headers=bearer(token)).status_code == 403
    r = api.client.put(f"/v1/operators/{OPS}/password", json={"password": "x" * 20}, headers=bearer(token))
    assert r.status_code == 403


def test_a_new_password_ends_the_sessions(api: Api, ops: Held) -> None:
    r = api.client.put(f"/v1/operators/{OPS}/password", json={"password": "short"}, headers=api.admin())
    assert r.status_code == 422 and "at least 12" in r.json()["detail"]
    r = api.client.put(
        f"/v1/operators/{OPS}/password", json={"password": "a brand new password"}, headers=api.admin()
    )
    assert r.status_code == 204
    assert _uses(api, ops.access) == [401, 401] and _refresh(api, ops.refresh) == 401
    assert _uses(api, ops.key) == [200, 201]  # its API keys are not its password
    assert login(api, OPS, OPS_PASSWORD)[0] == 401
    assert login(api, OPS, "a brand new password")[0] == 200
    assert [e["actor"] for e in _audit(api, "operator.password_set")] == [ADMIN]


def test_an_operator_changes_its_own_password_with_the_old_one(api: Api, ops: Held) -> None:
    def change(old: str, new: str, token: str = ops.access) -> int:
        body = {"old_password": old, "new_password": new}
        return api.client.post("/v1/me/password", json=body, headers=bearer(token)).status_code

    assert change(OPS_PASSWORD, "a brand new password", ops.key) == 403  # an API key has none
    limit = api.service.settings.rate_limit.account_failures
    assert [change("not the old one", "a brand new password") for _ in range(limit)] == [403] * limit
    assert change(OPS_PASSWORD, "a brand new password") == 429  # guessing the old one is a login
    api.service.clock.advance(api.service.settings.rate_limit.window)  # type: ignore[attr-defined]
    assert change(OPS_PASSWORD, "a brand new password") == 204
    assert _uses(api, ops.access) == [401, 401]  # this session too: log in again
    assert login(api, OPS, "a brand new password")[0] == 200
    assert [e["actor"] for e in _audit(api, "operator.password_changed")] == [OPS]


def _cli(api: Api, tmp_path: Path, *args: str, stdin: str | None = None) -> str:
    s = api.service.settings
    config = tmp_path / "cli.toml"
    config.write_text(
        f'state_dir = "{s.state_dir}"\n[database]\nurl = "{s.database_url}"\n'
        f'[broker]\nout_dir = "{s.broker.out_dir}"\n'
    )
    result = CliRunner().invoke(cli_app, ["operators", *args, "-c", str(config)], input=stdin)
    assert result.exit_code == 0, result.output
    return result.output


def test_the_cli_disables_deletes_and_a_running_service_follows_within_the_ttl(
    api: Api, ops: Held, tmp_path: Path
) -> None:
    ttl = api.service.settings.tokens.subject_check_ttl
    assert ttl == TTL
    out = " ".join(_cli(api, tmp_path, "disable", OPS).split())
    assert f"operator {OPS} disabled; refresh tokens revoked: 1; API keys revoked:" in out
    assert f"refuses its access tokens within {ttl:g} s" in out
    # Keys and refresh tokens are looked up on every use; access tokens after the TTL.
    for token in (ops.key, ops.key_of_key):
        assert _uses(api, token) == [401, 401]
    assert _refresh(api, ops.refresh) == 401
    assert _uses(api, ops.access) == [200, 201]  # the service's last look is still fresh
    api.service.clock.advance(ttl)  # type: ignore[attr-defined]
    _assert_all_refused(api, ops)
    assert _row(_cli(api, tmp_path, "list"), OPS) == [OPS, "admin", "disabled"]
    _cli(api, tmp_path, "enable", OPS)
    assert _row(_cli(api, tmp_path, "list"), OPS) == [OPS, "admin", "active"]
    _cli(api, tmp_path, "password", OPS, "--password-stdin", stdin="the cli's new password\n")
    assert login(api, OPS, "the cli's new password")[0] == 200
    assert f"operator {OPS} deleted" in _cli(api, tmp_path, "delete", OPS, "--yes")
    assert [e["actor"] for e in _audit(api, "operator.deleted")] == ["cli"]
    assert _row(_cli(api, tmp_path, "list"), OPS) == []


def _row(table: str, name: str) -> list[str]:
    """The first three cells of ``name``'s row in a printed table."""
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip("│┃| ").split("│")]
        if cells[0] == name:
            return cells[:3]
    return []


def test_the_cli_names_what_is_wrong(api: Api, tmp_path: Path) -> None:
    s = api.service.settings
    config = tmp_path / "cli.toml"
    config.write_text(f'state_dir = "{s.state_dir}"\n[database]\nurl = "{s.database_url}"\n')
    for args, said in ((["disable", "nobody"], "no operator 'nobody'"),
                       (["delete", ADMIN, "--yes"], "last active administrator")):  # fmt: skip
        result = CliRunner().invoke(cli_app, ["operators", *args, "-c", str(config)])
        assert result.exit_code == 1 and said in " ".join(result.output.split()), result.output
    assert login(api, ADMIN, ADMIN_PASSWORD)[0] == 200
