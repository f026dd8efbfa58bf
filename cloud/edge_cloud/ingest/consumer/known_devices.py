"""``consumer.devices = "known"``: is a device enabled?  Asked of the auth service's API.

``GET {auth.api_url}/v1/devices/{id}`` with the API key (scope ``devices:read``): 404 is
an unknown device, a status other than ``active`` a disabled one (pending, disabled,
revoked).  Answers are cached (``CACHE_S`` for a device let through, ``NEGATIVE_CACHE_S``
for one refused, so enabling a device takes effect soon).

When the auth service cannot answer, the last answer stands, however old; a device never
asked about is let through, counted and logged (once per series).  Refusing would be for
good — a refused message is acknowledged and its events are lost — over an outage of
another service; the broker has already authenticated the device, and this check is a
second line behind it.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import OrderedDict
from collections.abc import Callable
from typing import Literal

from edge_cloud.ingest.errors import DeviceCheckUnavailable

log = logging.getLogger(__name__)

Verdict = Literal["ok", "unknown", "disabled"]
CACHE_S = 60.0
NEGATIVE_CACHE_S = 10.0
CACHE_MAX = 100_000
TIMEOUT_S = 5.0
RETRY_S = 10.0
"""After a failed call, the auth service is not asked again for this long (each call that
times out would hold up the decoding of every message behind it)."""


def fetch_device(api_url: str, api_key: str, device_id: str, timeout: float = TIMEOUT_S) -> Verdict:
    """Ask the auth service once; raises :class:`DeviceCheckUnavailable`."""
    url = f"{api_url.rstrip('/')}/v1/devices/{urllib.parse.quote(device_id, safe='')}"
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {api_key}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return "unknown"
        raise DeviceCheckUnavailable(f"{url}: HTTP {exc.code}") from exc
    except (urllib.error.URLError, TimeoutError, OSError, ValueError) as exc:
        raise DeviceCheckUnavailable(f"{url}: {exc}") from exc
    status = body.get("status") if isinstance(body, dict) else None
    return "ok" if status == "active" else "disabled"


class KnownDevices:
    """Cached answers to "may this device's events be stored?"."""

    def __init__(
        self,
        fetch: Callable[[str], Verdict],
        *,
        on_unavailable: Callable[[], None] = lambda: None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._on_unavailable = on_unavailable
        self._monotonic = monotonic
        self._cache: OrderedDict[str, tuple[Verdict, float]] = OrderedDict()
        self._failing = False
        self._retry_at = 0.0

    def check(self, device_id: str) -> Verdict:
        now = self._monotonic()
        cached = self._cache.get(device_id)
        if cached is not None and cached[1] > now:
            return cached[0]
        if self._failing and now < self._retry_at:
            self._on_unavailable()
            return cached[0] if cached is not None else "ok"
        try:
            verdict = self._fetch(device_id)
        except DeviceCheckUnavailable as exc:
            self._on_unavailable()
            self._retry_at = now + RETRY_S
            if not self._failing:
                log.warning("cannot ask the auth service about devices (%s): letting them through", exc)
                self._failing = True
            return cached[0] if cached is not None else "ok"
        if self._failing:
            log.info("the auth service answers about devices again")
            self._failing = False
        self._cache[device_id] = (verdict, now + (CACHE_S if verdict == "ok" else NEGATIVE_CACHE_S))
        self._cache.move_to_end(device_id)
        while len(self._cache) > CACHE_MAX:
            self._cache.popitem(last=False)
        return verdict
