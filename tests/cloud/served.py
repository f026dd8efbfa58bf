"""The auth API served by uvicorn on a free port in a thread, recording every request it gets."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn

from edge_cloud.auth.api.app import create_app
from edge_cloud.auth.service import AuthService
from tests.mosquitto import free_port


@dataclass
class Recorded:
    method: str
    path: str
    query: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes = b""

    def raw(self) -> bytes:
        head = b"\n".join(k + b": " + v for k, v in self.headers)
        return b"\n".join([self.method.encode(), self.path.encode(), self.query, head, self.body])


@dataclass
class Recorder:
    """ASGI middleware keeping every HTTP request's method, path, headers and body."""

    app: Any
    requests: list[Recorded] = field(default_factory=list)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        record = Recorded(
            scope["method"], scope["path"], scope.get("query_string", b""), list(scope["headers"])
        )
        self.requests.append(record)

        async def recording_receive() -> dict[str, Any]:
            message: dict[str, Any] = await receive()
            if message["type"] == "http.request":
                record.body += message.get("body", b"")
            return message

        await self.app(scope, recording_receive, send)


@contextmanager
def serve(service: AuthService) -> Iterator[tuple[str, Recorder]]:
    recorder = Recorder(create_app(service))
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(recorder, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, name="auth-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", recorder
    finally:
        server.should_exit = True
        thread.join(timeout=10)
