"""The daemon's logs: one line per event worth knowing, to stdout (journald), no secrets.

- ``[logging] format = "text"``: ``key=value`` pairs (``level=warning logger=… msg="…"``),
  with ``ts=`` unless stdout is the journal, which stamps lines itself;
  ``"json"``: one JSON object per line (``ts``, ``level``, ``logger``, ``msg``, ``exc``).
  Either way a record is one physical line (newlines in messages and tracebacks escaped):
  journald makes every line a record of its own.
- :func:`is_journal`: stdout is the journal when its device and inode are the ones systemd
  put in ``$JOURNAL_STREAM`` (a child that inherited the variable but writes to a file or a
  pipe is not).  There ``journal_prefix = "auto"`` starts each line with its syslog priority
  (``<3>`` error, ``<4>`` warning, ``<6>`` info, ``<7>`` debug; sd-daemon(3)), which journald
  strips and keeps as the record's level (``journalctl -p warning``).
- :class:`RepeatFilter`: an identical warning or error (same logger, template and
  arguments) is logged once per ``repeat_window``; the repeats are counted and the next
  line that gets through says how many were suppressed.
- :class:`Redactor`: every secret the configuration holds (the MQTT password) is replaced
  by ``***`` in the formatted line, exception text included, whatever code logged it.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import IO, Any

from edge_agent.settings import LoggingSettings, Settings

MAX_TRACKED = 1000
"""Distinct repeated messages remembered at once (oldest forgotten first)."""


class RepeatFilter(logging.Filter):
    """Lets an identical WARNING+ record through once per ``window`` seconds; counts the rest."""

    def __init__(self, window: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.window = window
        self._clock = clock
        self._seen: dict[tuple[Any, ...], list[float | int]] = {}
        """key -> [time the last line got through, repeats suppressed since]."""
        self.suppressed = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if self.window <= 0 or record.levelno < logging.WARNING:
            return True
        key = (record.name, record.levelno, str(record.msg), _args_key(record.args))
        now = self._clock()
        seen = self._seen.get(key)
        if seen is not None and now - seen[0] < self.window:
            seen[1] += 1
            self.suppressed += 1
            return False
        if seen is not None and seen[1]:
            record.repeated = int(seen[1])
        self._seen.pop(key, None)
        self._seen[key] = [now, 0]
        if len(self._seen) > MAX_TRACKED:
            del self._seen[next(iter(self._seen))]
        return True


def _args_key(args: object) -> str:
    try:
        return repr(args)
    except Exception:  # a broken __repr__ in someone's argument must not break logging
        return object.__repr__(args)


class Redactor:
    """Replaces known secret strings by ``***``: as they are, and as they look escaped in
    JSON or in a ``repr`` (a secret with a ``"`` or a ``\\`` in it changes shape once a
    message is quoted, or when it is logged inside a repr of something else)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        forms = {
            form for s in secrets if s for form in (s, json.dumps(s, ensure_ascii=False)[1:-1], repr(s)[1:-1])
        }
        self.secrets = sorted(forms, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text


class _Base(logging.Formatter):
    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self.redact = redact

    def message(self, record: logging.LogRecord) -> str:
        """The message, secrets masked BEFORE it is quoted or encoded (escaping changes them)."""
        text = record.getMessage()
        repeated = getattr(record, "repeated", 0)
        if repeated:
            text += f" (and {repeated} identical line(s) suppressed)"
        return self.redact(text)

    def exception(self, record: logging.LogRecord) -> str | None:
        return self.redact(self.formatException(record.exc_info)) if record.exc_info else None


class KeyValueFormatter(_Base):
    def __init__(self, redact: Redactor, *, with_time: bool) -> None:
        super().__init__(redact)
        self.with_time = with_time

    def format(self, record: logging.LogRecord) -> str:
        parts = []
        if self.with_time:
            parts.append(f"ts={_iso(record.created)}")
        parts += [
            f"level={record.levelname.lower()}",
            f"logger={record.name}",
            f"msg={_quote(self.message(record))}",
        ]
        exc = self.exception(record)
        if exc is not None:
            parts.append(f"exc={_quote(exc)}")
        return self.redact(" ".join(parts))


class SyslogPrefixFormatter(logging.Formatter):
    """Puts ``<N>``, the record's syslog priority, in front of what ``inner`` formats."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        return f"<{syslog_priority(record.levelno)}>{self.inner.format(record)}"


SYSLOG_PRIORITIES = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4), (logging.INFO, 6))
"""Lowest logging level of each syslog priority (crit, err, warning, info); below: 7 (debug)."""


def syslog_priority(levelno: int) -> int:
    for lowest, priority in SYSLOG_PRIORITIES:
        if levelno >= lowest:
            return priority
    return 7


def is_journal(stream: IO[str], journal_stream: str | None) -> bool:
    """Whether ``stream`` is the journal socket ``$JOURNAL_STREAM`` (``DEV:INODE``) names."""
    dev, sep, ino = (journal_stream or "").partition(":")
    if not sep:
        return False
    try:
        stat = os.fstat(stream.fileno())
        return (stat.st_dev, stat.st_ino) == (int(dev), int(ino))
    except (OSError, ValueError):  # no file descriptor (StringIO), a closed one, or a malformed variable
        return False


class JSONFormatter(_Base):
    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "ts": _iso(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": self.message(record),
        }
        exc = self.exception(record)
        if exc is not None:
            body["exc"] = exc
        return self.redact(json.dumps(body, ensure_ascii=False))


def _iso(created: float) -> str:
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # quotes, escapes newlines: one line per record


def secrets_of(settings: Settings) -> list[str]:
    """Every secret value in the configuration."""
    password = settings.mqtt.password
    return [password.get_secret_value()] if password is not None else []


def configure_logging(
    config: LoggingSettings, *, secrets: Iterable[str] = (), stream: IO[str] | None = None
) -> logging.Handler:
    """Replace the root logger's handlers with one stdout handler as ``config`` says."""
    redact = Redactor(secrets)
    stream = stream or sys.stdout
    handler = logging.StreamHandler(stream)
    journal = is_journal(stream, os.environ.get("JOURNAL_STREAM"))
    formatter: logging.Formatter
    if config.format == "json":
        formatter = JSONFormatter(redact)
    else:
        formatter = KeyValueFormatter(redact, with_time=not journal)
    if config.journal_prefix == "always" or (config.journal_prefix == "auto" and journal):
        formatter = SyslogPrefixFormatter(formatter)
    handler.setFormatter(formatter)
    handler.addFilter(RepeatFilter(config.repeat_window))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(config.level.upper())
    # paho and asyncio chatter at DEBUG only.
    for noisy in ("asyncio", "aiosqlite"):
        logging.getLogger(noisy).setLevel(max(logging.INFO, root.level))
    return handler
