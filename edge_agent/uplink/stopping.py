"""The forwarder's stop request: one flag every part reads, and waits it cuts short.

:meth:`~edge_agent.uplink.forwarder.Forwarder.stop` sets it once and nothing clears it; the
connect loop, the session and the pump read it, and the backoff waits end early on it.
"""

from __future__ import annotations

import asyncio


class Stopped(Exception):
    """Raised by :meth:`StopSignal.sleep` (and the connect loop) when stop() interrupts a wait."""


class StopSignal:
    def __init__(self) -> None:
        self._event = asyncio.Event()

    @property
    def requested(self) -> bool:
        return self._event.is_set()

    def set(self) -> None:
        self._event.set()

    async def wait(self) -> None:
        await self._event.wait()

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds``; raise :class:`Stopped` at once if stop is (or gets) requested."""
        try:
            async with asyncio.timeout(seconds):
                await self._event.wait()
        except TimeoutError:
            return
        raise Stopped
