"""The dashboard's login when the auth service fails: not the operator's wrong password."""

from __future__ import annotations

import pytest

from edge_cloud.ingest.dashboard import session
from edge_cloud.ingest.errors import LoginFailed
from tests.mosquitto import free_port


def test_an_auth_service_that_does_not_answer_is_503_not_a_refused_password() -> None:
    # A wrong password is the operator's to fix (401); an auth service down is not theirs.
    url = f"http://127.0.0.1:{free_port()}/v1/token"  # nothing listens there
    with pytest.raises(LoginFailed) as failed:
        session.login(url, "operator", "a password")
    assert failed.value.status == 503 and url in str(failed.value)
