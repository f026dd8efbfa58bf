"""Another service verifying tokens from the served JWKS, across a key rotation."""

from __future__ import annotations

import jwt
import pytest

from edge_cloud.auth import access_tokens
from edge_cloud.auth.service import AuthService
from edge_cloud.common.errors import ScopeMissing, TokenInvalid
from edge_cloud.common.jwks_client import RemoteJWKS
from tests.cloud.served import serve


def _token(service: AuthService, scopes: list[str]) -> str:
    t = service.settings.tokens
    token, _exp = access_tokens.issue(
        service.keys,
        issuer=t.issuer,
        audience=t.audience,
        subject="ingest-test",
        scopes=scopes,
        now=service.now(),
        ttl=60,
    )
    return token


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_tokens_verify_from_the_jwks_url_and_after_a_key_rotation(service: AuthService) -> None:
    t = service.settings.tokens
    with serve(service) as (url, recorder):
        remote = RemoteJWKS(
            f"{url}/.well-known/jwks.json", issuer=t.issuer, audience=t.audience, min_refresh=0
        )
        assert remote.verify(_token(service, ["events:read"]), scope="events:read").subject == "ingest-test"
        with pytest.raises(ScopeMissing):
            remote.verify(_token(service, ["devices:read"]), scope="events:read")
        service.rotate_signing_key()
        assert (
            remote.verify(_token(service, ["events:read"])).subject == "ingest-test"
        )  # unknown kid: refetched
        fetches = sum(1 for r in recorder.requests if r.path == "/.well-known/jwks.json")
        assert fetches == 2
        remote.min_refresh = 3600
        claims = jwt.decode(_token(service, ["admin"]), options={"verify_signature": False})
        forged = jwt.encode(
            claims, service.keys.current.private, algorithm="EdDSA", headers={"kid": "made-up-kid"}
        )
        for _ in range(5):
            with pytest.raises(TokenInvalid):
                remote.verify(forged)
        assert sum(1 for r in recorder.requests if r.path == "/.well-known/jwks.json") == fetches


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_garbage_jwks_is_refused_and_the_keys_in_use_stay(service: AuthService) -> None:
    t = service.settings.tokens
    good = service.keys.jwks()
    answers: list[object] = [good]
    remote = RemoteJWKS(
        "http://jwks.invalid",
        issuer=t.issuer,
        audience=t.audience,
        min_refresh=0,
        fetch=lambda _url: answers[-1],  # type: ignore[arg-type,return-value]
    )
    token = _token(service, ["events:read"])
    assert remote.verify(token).subject == "ingest-test"
    service.rotate_signing_key()  # a new kid: the next verify refetches
    fresh = _token(service, ["events:read"])
    bad_entry = {"kty": "OKP", "crv": "Ed25519", "kid": "broken", "x": "!!"}
    for garbage in ([], {"keys": "x"}):
        answers.append(garbage)
        with pytest.raises(TokenInvalid, match="not a JSON object"):
            remote.verify(fresh)
        assert remote.verify(token).subject == "ingest-test"  # not a key set: the old keys stay
    for garbage in ({"keys": [1, "a", None]}, {"keys": [bad_entry]}):
        answers.append(garbage)
        with pytest.raises(TokenInvalid, match="unknown key id"):
            remote.verify(fresh)
    answers.append({"keys": [bad_entry, *good["keys"]]})
    assert remote.verify(token).subject == "ingest-test"  # the good key of a mixed set still works
    answers.append(service.keys.jwks())
    assert remote.verify(fresh).subject == "ingest-test"
