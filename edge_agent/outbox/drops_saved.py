"""Drops not announced when the daemon stops, kept in the state directory for the next start.

At a stop while the outbox still refuses commits (locked by another process, a full disk),
the :class:`~edge_agent.outbox.drops.DropLedger` may hold drops no gap event announced yet.
Memory ends with the process, so they are written to ``{state_dir}/dropped.json`` (the
announcement's ``data``: written, fsynced, renamed into place, directory fsynced, like the
spool) and the next start carries them into its ledger; the file goes once the gap event that
announces them is committed.  A power cut between that commit and the unlink announces them
twice (a count too high, never one lost).
"""

from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path
from typing import Any

from edge_agent.outbox.dirs import fsync_dir, write_durably
from edge_agent.outbox.drops import DROP_REASONS, DropLedger

log = logging.getLogger("edge_agent.outbox")

FILE = "dropped.json"


def saved_drops_file(state_dir: Path) -> Path:
    return state_dir / FILE


def save_drops(state_dir: Path, data: dict[str, Any]) -> bool:
    """Write ``data`` (an announcement, see drops.py) durably; False (logged) if it could not be."""
    final = saved_drops_file(state_dir)
    try:
        write_durably(final, json.dumps(data).encode())
    except OSError as exc:
        log.error("cannot save the unannounced dropped events to %s: %s", final, exc.strerror or exc)
        return False
    return True


def load_drops(state_dir: Path) -> dict[str, Any] | None:
    """The drops a previous run saved (None: none, or a file that is not one, logged)."""
    path = saved_drops_file(state_dir)
    try:
        data = json.loads(path.read_bytes())
        dropped = {r: int(n) for r, n in data["dropped"].items() if r in DROP_REASONS and int(n) > 0}
        first_ts, last_ts = data.get("first_ts"), data.get("last_ts")
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        log.error("ignoring %s: not a saved count of dropped events (%s)", path, exc)
        return None
    if not dropped:
        return None
    return {
        "dropped": dropped,
        "first_ts": first_ts if isinstance(first_ts, str) else None,
        "last_ts": last_ts if isinstance(last_ts, str) else None,
    }


def forget_drops(state_dir: Path) -> None:
    """The saved drops are announced: remove the file."""
    with contextlib.suppress(OSError):  # one left behind only announces its drops again
        saved_drops_file(state_dir).unlink()
        fsync_dir(state_dir)


def carry_saved_drops(state_dir: Path, ledger: DropLedger) -> None:
    """At start: the previous run's unannounced drops join ``ledger`` (to announce them)."""
    saved = load_drops(state_dir)
    if saved is None:
        return
    ledger.carry(saved)
    ledger.on_carried_announced = lambda: forget_drops(state_dir)
    log.warning(
        "%d events the previous run did not commit are not announced yet: a gap event will",
        ledger.carried,
    )


def keep_unannounced_drops(state_dir: Path, ledger: DropLedger) -> None:
    """At stop: save what ``ledger`` could not announce, for the next start."""
    data = ledger.unannounced_data()
    if data is None:
        return
    kept = save_drops(state_dir, data)
    log.error(
        "%d events were not committed and could not be announced before the stop (%s)",
        data["count"],
        "saved for the next start to announce" if kept else "their count is lost",
    )
