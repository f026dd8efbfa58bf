"""Byte-level model of a Plantower PMS5003 on the far end of a 9600 8N1 line.

What it does, as the PMS5003 manual v2.3 and captured traffic describe the part:

* active mode (the power-up default): a 32-byte frame every 2.3 s ("stable" mode);
* passive mode: one frame in answer to each read request (0xE2);
* mode (0xE1) and sleep (0xE4, data 0) commands are answered with the 8-byte reply
  ``42 4D 00 04 CMD DATA sumH sumL``; wake-up (0xE4, data 1) is not answered, the
  sensor simply starts measuring again (the frames people capture after a wake-up
  command are data frames, not replies);
* asleep it sends nothing; after wake-up the first frame comes ~2.5 s later
  (jbanaszczyk/pms5003 ``WAKEUP_TIME``) and values are unsettled for 30 s while the
  fan spins up;
* bytes leave one by one at 9600 baud, so a read can catch half a frame;
* fault knobs: ``zero_frames`` (all-zero frames, as after power-up), ``massless_next``
  (PM10 = 32 µg/m³ with every count 0) and ``corrupt_next`` (a wrong checksum).

The truth is ``signals`` keyed ``pm1_0_ugm3`` / ``pm2_5_ugm3`` / ``pm10_ugm3``
(atmospheric-environment values), with indoor pollution episodes shared by all three.
Frames stay internally consistent: PM1.0 <= PM2.5 <= PM10, CF=1 equal to the
atmospheric value below ~30 µg/m³ and up to 1.5 times it above (the ratio Plantower
sensors show in field data, e.g. Wallace et al. as reproduced on the AirGradient
forum), and counts that fall with particle size.
"""

from __future__ import annotations

import math
import random
import threading
from typing import Any, Literal

from edge_drivers.clock import SYSTEM_CLOCK, Clock
from edge_drivers.pms5003 import (
    CMD_MODE,
    CMD_POWER,
    CMD_READ,
    DATA_WORDS,
    START,
    Frame,
    build_frame,
    checksum,
    encode_frame,
)
from edge_drivers.sim.recent import RecentList
from edge_drivers.sim.serial_port import LineTransmitter, SerialDeviceModel
from edge_drivers.sim.signals import Signal

"""One byte at 9600 baud, 8N1 (start + 8 data + stop bits)."""
STABLE_INTERVAL_S = 2.3
WAKE_FIRST_FRAME_S = 2.5
SPIN_UP_S = 30.0
ANSWER_DELAY_S = 0.005
"""Time the sensor's MCU takes to act on a command."""
MAX_BACKLOG_FRAMES = 128
"""A Linux tty buffers 4 KiB; frames beyond that would have been lost anyway."""


class _Episodes:
    """Indoor pollution episodes (cooking, a candle): PM rises in minutes, decays in ~30 min."""

    MEAN_GAP_S = 3 * 3600.0
    RISE_S = 120.0
    DECAY_S = 1800.0

    def __init__(self, clock: Clock, seed: int | None) -> None:
        self._rng = random.Random(seed)
        self._events: list[tuple[float, float]] = []
        self._next = clock.monotonic() + self._rng.expovariate(1 / self.MEAN_GAP_S)
        self._lock = threading.Lock()

    def level(self, now: float) -> float:
        """Extra PM2.5 (µg/m³) from the episodes going on at ``now``."""
        with self._lock:
            while self._next <= now:
                self._events.append((self._next, self._rng.uniform(10.0, 50.0)))
                self._next += self._rng.expovariate(1 / self.MEAN_GAP_S)
            self._events = [(t, peak) for t, peak in self._events if now - t < 10 * self.DECAY_S]
            return sum(
                peak * (1 - math.exp(-(now - t) / self.RISE_S)) * math.exp(-(now - t) / self.DECAY_S)
                for t, peak in self._events
            )


class _EpisodicSignal(Signal):
    """A :class:`Signal` whose truth also carries a share of the shared pollution episodes."""

    def __init__(self, base: float, *, episodes: _Episodes, share: float, **kwargs: Any) -> None:
        self._episodes = episodes
        self._share = share
        super().__init__(base, **kwargs)

    def _truth(self, now: float) -> float:
        value = super()._truth(now) + self._share * self._episodes.level(now)
        return min(max(value, self.lo), self.hi)


def cf1_from_atmospheric(value: float) -> float:
    """CF=1 mass for an atmospheric-environment mass: equal below 30 µg/m³, ×1.5 above 70."""
    return value * (1.0 + 0.5 * min(max((value - 30.0) / 40.0, 0.0), 1.0))


class SimulatedPMS5003(SerialDeviceModel):
    """A PMS5003: frames, command replies, sleep and fan spin-up, at byte level."""

    def __init__(
        self,
        *,
        clock: Clock = SYSTEM_CLOCK,
        seed: int | None = None,
        mode: Literal["active", "passive"] = "active",
        asleep: bool = False,
        corrupt_next: int = 0,
        zero_frames: int = 0,
    ) -> None:
        super().__init__(clock=clock)
        if mode not in ("active", "passive"):
            raise ValueError(f"mode must be 'active' or 'passive', not {mode!r}")
        self.mode = mode
        """The mode the sensor is in; it persists until a mode command (or a power cycle)."""
        self.asleep = asleep
        self.corrupt_next = corrupt_next
        """Number of next data frames sent with a wrong checksum."""
        self.zero_frames = zero_frames
        """The next this-many data frames are all zeros, as after power-up (fan spinning up)."""
        self.massless_next = 0
        """The next this-many data frames report PM10 = 32 µg/m³ and not one particle counted."""
        self.commands: RecentList[tuple[int, int]] = RecentList()
        """Every valid host command received, as (command, data)."""
        self.frames_sent = 0
        self.last_frame: Frame | None = None
        """The data most recently put on the line (before any corruption)."""
        rng = random.Random(seed)
        self._rng = random.Random(rng.randrange(2**32))
        now = clock.monotonic()

        def sub_seed() -> int | None:
            return None if seed is None else rng.randrange(2**32)

        episodes = _Episodes(clock, sub_seed())
        common: dict[str, Any] = {"period_s": 3600.0, "lo": 0.0, "hi": 1000.0, "clock": clock}
        self.signals: dict[str, Signal] = {
            "pm1_0_ugm3": _EpisodicSignal(
                5.5,
                episodes=episodes,
                share=0.7,
                amplitude=1.2,
                walk=0.015,
                noise=0.5,
                seed=sub_seed(),
                **common,
            ),
            "pm2_5_ugm3": _EpisodicSignal(
                8.0,
                episodes=episodes,
                share=1.0,
                amplitude=1.8,
                walk=0.025,
                noise=0.7,
                seed=sub_seed(),
                **common,
            ),
            "pm10_ugm3": _EpisodicSignal(
                11.0,
                episodes=episodes,
                share=1.25,
                amplitude=2.5,
                walk=0.035,
                noise=1.0,
                seed=sub_seed(),
                **common,
            ),
        }
        self._woke_at: float | None = None
        self._rx = bytearray()
        self._line = LineTransmitter(now)
        # Powered up long ago: the next frame is somewhere within one interval.
        self._next_frame_at: float | None = None
        if mode == "active" and not asleep:
            self._next_frame_at = now + self._rng.uniform(0.2, STABLE_INTERVAL_S)

    # -- SerialDeviceModel -------------------------------------------------------------------

    def poll(self, now: float) -> bytes:
        self._schedule_frames(now)
        return self._line.poll(now)

    def next_output_at(self, now: float) -> float | None:
        # No scheduling here: the port calls this outside its lock.  A frame that is
        # already due gives a time in the past, and the port polls at once.
        queued = self._line.next_byte_at()
        if queued is not None:
            return queued
        return self._next_frame_at if self._sending_on_its_own() else None

    def receive(self, data: bytes) -> None:
        now = self.clock.monotonic()
        self._schedule_frames(now)
        self._rx += data
        while True:
            start = self._rx.find(START)
            if start < 0:
                del self._rx[: max(0, len(self._rx) - 1)]
                return
            del self._rx[:start]
            if len(self._rx) < 7:
                return
            cmd, value, received = self._rx[2], int.from_bytes(self._rx[3:5], "big"), self._rx[5:7]
            if checksum(bytes(self._rx[:5])).to_bytes(2, "big") != received:
                del self._rx[:2]  # a real sensor ignores a command with a bad checksum
                continue
            del self._rx[:7]
            self.commands.append((cmd, value))
            self._execute(cmd, value, now)

    # -- behaviour -------------------------------------------------------------------------

    def _execute(self, cmd: int, value: int, now: float) -> None:
        if cmd == CMD_MODE:
            self.mode = "active" if value else "passive"
            self._reply(cmd, value, now)
            if self.mode == "passive":
                self._next_frame_at = None
            elif self._next_frame_at is None and not self.asleep:
                self._next_frame_at = now + 1.0
        elif cmd == CMD_READ:
            if self.mode == "passive" and not self.asleep:
                self._send(now + ANSWER_DELAY_S, self._frame(now))
        elif cmd == CMD_POWER and value == 0:
            self._reply(cmd, value, now)
            self.asleep = True
            self._next_frame_at = None
        elif cmd == CMD_POWER and self.asleep:
            self.asleep = False
            self._woke_at = now
            if self.mode == "active":
                self._next_frame_at = now + WAKE_FIRST_FRAME_S

    def _sending_on_its_own(self) -> bool:
        return self.mode == "active" and not self.asleep and self._next_frame_at is not None

    def _schedule_frames(self, now: float) -> None:
        if not self._sending_on_its_own():
            return
        assert self._next_frame_at is not None
        missed = int((now - self._next_frame_at) / STABLE_INTERVAL_S) + 1 - MAX_BACKLOG_FRAMES
        if missed > 0:
            self._next_frame_at += missed * STABLE_INTERVAL_S
        while self._next_frame_at <= now:
            self._send(self._next_frame_at, self._frame(self._next_frame_at))
            self._next_frame_at += STABLE_INTERVAL_S

    def _reply(self, cmd: int, value: int, now: float) -> None:
        self._send(now + ANSWER_DELAY_S, build_frame(bytes((cmd, value & 0xFF))))

    def _send(self, at: float, data: bytes) -> None:
        self._line.send(at, data)

    def _frame(self, at: float) -> bytes:
        frame = self._measure(at)
        self.last_frame = frame
        self.frames_sent += 1
        data = encode_frame(frame)
        if self.corrupt_next > 0:
            self.corrupt_next -= 1
            data = data[:-1] + bytes((data[-1] ^ 0x01,))
        return data

    def _measure(self, at: float) -> Frame:
        if self.zero_frames > 0:
            self.zero_frames -= 1
            return Frame(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, reserved=0x9700)
        if self.massless_next > 0:
            self.massless_next -= 1
            return Frame(0, 0, 32, 0, 0, 32, 0, 0, 0, 0, 0, 0, reserved=0x9700)
        pm = [self.signals[name].sample() for name in ("pm1_0_ugm3", "pm2_5_ugm3", "pm10_ugm3")]
        if self._woke_at is not None and at - self._woke_at < SPIN_UP_S:
            # The fan has not reached its speed: the airflow, and so the counts, are off.
            pm = [value * self._rng.uniform(0.3, 1.7) for value in pm]
        # Cumulative size classes: PM1.0 ⊂ PM2.5 ⊂ PM10.
        pm1 = max(pm[0], 0.0)
        pm25 = max(pm[1], pm1)
        pm10 = max(pm[2], pm25)
        n03 = (130.0 * pm25 + 60.0) * self._rng.uniform(0.9, 1.1)
        n05 = 0.3 * n03
        n10 = 0.05 * n03 + 6.0 * (pm25 - pm1)
        n25 = 3.0 * (pm10 - pm25) + 0.1 * n10
        counts = [n03, n05, n10, n25, 0.3 * n25, 0.075 * n25]
        for i in range(1, len(counts)):
            counts[i] = min(counts[i], counts[i - 1])

        def word(value: float) -> int:
            return min(max(round(value), 0), 0xFFFF)

        atm = [word(v) for v in (pm1, pm25, pm10)]
        cf1 = [word(cf1_from_atmospheric(v)) for v in (pm1, pm25, pm10)]
        n = [word(v) for v in counts]
        # Word 13 is reserved; units send a version byte there (0x97 in many captures).
        return Frame(**dict(zip(DATA_WORDS, [*cf1, *atm, *n, 0x9700], strict=True)))
