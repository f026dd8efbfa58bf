"""Request bodies: bounded while they stream in (413), and never echoed back in a 422.

The attack (issue 14, item 6): an unauthenticated 100 MiB JSON body to ``/v1/enroll`` was
read, parsed and sent back whole inside the 422.  Served by uvicorn on a socket, so what
the application pulled from the connection is what the server read.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_cloud.auth.service import AuthService
from tests.cloud.conftest import Api
from tests.cloud.served import Recorder, serve

HUNDRED_MIB = 100 * 1024 * 1024
CHUNK = 16 * 1024
LIMIT = 64 * 1024  # the default server.max_body_bytes


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'auth.db'}"  # nothing here is about the database


@pytest.fixture
def served(service: AuthService) -> Iterator[tuple[http.client.HTTPConnection, Recorder]]:
    with serve(service) as (url, recorder):
        host, port = url.removeprefix("http://").split(":")
        # The timeout only keeps the old code (which waited for the whole body) from hanging.
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        try:
            yield conn, recorder
        finally:
            conn.close()


def _start(conn: http.client.HTTPConnection, **headers: str) -> None:
    conn.putrequest("POST", "/v1/enroll")
    conn.putheader("Content-Type", "application/json")
    for name, value in headers.items():
        conn.putheader(name.replace("_", "-"), value)
    conn.endheaders()


def test_a_declared_100_mib_body_is_refused_before_a_byte_of_it_is_read(
    served: tuple[http.client.HTTPConnection, Recorder], service: AuthService
) -> None:
    conn, recorder = served
    _start(conn, Content_Length=str(HUNDRED_MIB))  # the headers only: the body never comes
    answer = conn.getresponse()
    assert answer.status == 413
    assert len(answer.read()) < 200
    assert [r.body for r in recorder.requests] == [b""]


def test_a_chunked_body_is_cut_off_at_the_limit(served: tuple[http.client.HTTPConnection, Recorder]) -> None:
    conn, recorder = served
    _start(conn, Transfer_Encoding="chunked")  # no Content-Length to check up front
    body = b'{"token": "' + b"x" * (LIMIT + CHUNK)
    for at in range(0, len(body), CHUNK):  # and never the last chunk: the server must not wait for it
        piece = body[at : at + CHUNK]
        conn.send(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
    answer = conn.getresponse()
    assert answer.status == 413 and answer.getheader("Connection") == "close"
    assert len(answer.read()) < 200
    (request,) = recorder.requests
    assert LIMIT < len(request.body) <= len(body)
    # The connection is closed: the rest of the body is not read and dropped either.
    assert conn.sock is None or conn.sock.recv(1) == b""


def test_a_body_within_the_limit_is_served(api: Api) -> None:
    big = {"token": "eet_unknown", "csr": "A" * 16384}  # the schema's longest PEM
    assert len(json.dumps(big)) < LIMIT == api.service.settings.server.max_body_bytes
    r = api.client.post("/v1/enroll", json=big)
    assert r.status_code == 403, r.text  # refused for the token, not for the size


@pytest.mark.parametrize(
    "body",
    [
        {"token": "SECRET-INPUT" * 100},  # too long
        {"token": "t", "csr": "SECRET-INPUT\x00"},  # a character the pattern refuses
        {"token": "t", "unknown_field": "SECRET-INPUT"},  # an unknown field
        {"token": "t", "mode": "SECRET-INPUT"},  # not one of the choices
    ],
)
def test_a_validation_error_names_the_field_but_never_repeats_the_input(
    api: Api, body: dict[str, str]
) -> None:
    r = api.client.post("/v1/enroll", json=body)
    assert r.status_code == 422
    problems = r.json()["detail"]
    assert problems and all(set(p) == {"type", "loc", "msg"} for p in problems), problems
    assert "SECRET-INPUT" not in r.text
