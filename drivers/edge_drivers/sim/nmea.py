"""Byte-level model of a GNSS receiver sending NMEA-0183 at 9600 8N1.

Once per second, just after each whole UTC second, it sends the burst of a typical
receiver: GGA, GSA, GSV (several), RMC, VTG, each ``$…*hh`` CR LF with a correct
checksum, character by character at 9600 baud (a burst takes ~0.4 s).  The position
wanders a few metres around a configurable point and the altitude drifts; the truth
is ``signals`` keyed ``latitude_deg`` / ``longitude_deg`` / ``altitude_m``.

Knobs: ``no_fix_s`` (seconds after start-up before the first fix; meanwhile the
receiver sends what a u-blox module sends at a cold start: empty time and position,
quality 0, RMC status ``V`` and mode ``N``), ``corrupt_next`` (number of next
sentences sent with a wrong checksum), ``fix_quality`` (1; 6 dead reckoning, 7 manual,
8 simulator) and ``vendor``, how a maker's receiver differs:

* ``mediatek``: without a fix, the placeholder position ``8960.000000,N`` with quality 0;
  chatter in ``$SNRSTAT`` and ``$GYOACC`` sentences (no ``P``); multi-GNSS, so the burst
  (GGA first, RMC last) nearly fills the second at 9600 baud (~0.93 s);
* ``sirf``: without a fix, ``36000.0000`` as longitude; a ``$LOG108`` sentence;
* ``ublox``: RMC first (RMC, VTG, GGA, GSA, GSV, GLL), a 378-byte ``$PUBX,03`` per burst
  and a ``$GPTXT`` with spaces; a long burst, so the next epoch may start while a reader
  still waits for this one's RMC;
* every vendor prints a plain-text banner line at start-up.
"""

from __future__ import annotations

import math
import random
import re
import time
from datetime import UTC, datetime
from typing import Literal

from edge_drivers.clock import SYSTEM_CLOCK, Clock
from edge_drivers.nmea import KNOT_MPS, build_sentence
from edge_drivers.sim.serial_port import LineTransmitter, SerialDeviceModel
from edge_drivers.sim.signals import Signal

"""One character at 9600 baud, 8N1."""
OUTPUT_DELAY_S = 0.1
"""Receivers start the burst a little after the second it describes."""
MAX_BACKLOG_BURSTS = 8
"""About what a 4 KiB tty buffer holds; older bursts would have been lost anyway."""
METRES_PER_DEGREE = 111_320.0
PRNS = (2, 5, 7, 9, 13, 15, 18, 20, 23, 24, 29, 30)
"""The GPS satellites in view."""
Vendor = Literal["generic", "mediatek", "sirf", "ublox"]
VENDORS: tuple[Vendor, ...] = ("generic", "mediatek", "sirf", "ublox")
PUBX03_LENGTH = 378
"""Bytes of the u-blox satellite-status sentence as captured ($ to LF, 24 satellites)."""


def format_latitude(value: float) -> tuple[str, str]:
    """Signed degrees -> (``ddmm.mmmmm``, ``N``/``S``)."""
    return _degrees_minutes(value, 2), "N" if value >= 0 else "S"


def format_longitude(value: float) -> tuple[str, str]:
    """Signed degrees -> (``dddmm.mmmmm``, ``E``/``W``)."""
    return _degrees_minutes(value, 3), "E" if value >= 0 else "W"


def _degrees_minutes(value: float, width: int) -> str:
    # Round once, in units of 1e-5 minutes, so 59.999999' never prints as 60.00000'.
    units = round(abs(value) * 60 * 100_000)
    whole, rest = divmod(units, 60 * 100_000)
    return f"{whole:0{width}d}{rest // 100_000:02d}.{rest % 100_000:05d}"


class SimulatedNMEA(SerialDeviceModel):
    """A GNSS receiver: one NMEA burst per second, with or without a fix."""

    def __init__(
        self,
        *,
        clock: Clock = SYSTEM_CLOCK,
        seed: int | None = None,
        talker: str = "GN",
        latitude_deg: float = 52.5163,
        longitude_deg: float = 13.3777,
        altitude_m: float = 34.0,
        geoid_separation_m: float = 39.6,
        utc_start_s: float | None = None,
        no_fix_s: float = 0.0,
        corrupt_next: int = 0,
        fix_quality: int = 1,
        vendor: Vendor = "generic",
    ) -> None:
        super().__init__(clock=clock)
        if not re.fullmatch(r"[A-Z]{2}", talker):
            raise ValueError(f"talker must be two capital letters such as 'GN' or 'GP', not {talker!r}")
        if not (-90.0 <= latitude_deg <= 90.0 and -180.0 <= longitude_deg <= 180.0):
            raise ValueError(f"position {latitude_deg}, {longitude_deg} is not on Earth")
        if vendor not in VENDORS:
            raise ValueError(f"vendor must be one of {', '.join(VENDORS)}, not {vendor!r}")
        self.talker = talker
        self.vendor = vendor
        self.fix_quality = fix_quality
        """GGA quality of a fix: 1 GPS; 6 dead reckoning, 7 manual, 8 simulator are not measured."""
        self.geoid_separation_m = geoid_separation_m
        self.no_fix_s = no_fix_s
        """Seconds after start-up without a fix (raise it later to simulate losing the sky)."""
        self.corrupt_next = corrupt_next
        """Number of next sentences sent with a wrong checksum."""
        self.bursts_sent = 0
        rng = random.Random(seed)
        self._rng = random.Random(rng.randrange(2**32))

        def sub_seed() -> int | None:
            return None if seed is None else rng.randrange(2**32)

        metres_lat = 1.0 / METRES_PER_DEGREE
        metres_lon = metres_lat / max(math.cos(math.radians(latitude_deg)), 0.01)
        self.signals: dict[str, Signal] = {
            # A few metres of wander (multipath, atmosphere) around the true point.
            "latitude_deg": Signal(
                latitude_deg,
                amplitude=1.5 * metres_lat,
                period_s=600.0,
                walk=0.05 * metres_lat,
                noise=0.5 * metres_lat,
                lo=-90.0,
                hi=90.0,
                seed=sub_seed(),
                clock=clock,
            ),
            "longitude_deg": Signal(
                longitude_deg,
                amplitude=1.5 * metres_lon,
                period_s=700.0,
                walk=0.05 * metres_lon,
                noise=0.5 * metres_lon,
                lo=-180.0,
                hi=180.0,
                seed=sub_seed(),
                clock=clock,
            ),
            "altitude_m": Signal(
                altitude_m, amplitude=2.0, period_s=900.0, walk=0.05, noise=0.4, seed=sub_seed(), clock=clock
            ),
        }
        now = clock.monotonic()
        self._started = now
        self._utc_offset = (time.time() if utc_start_s is None else utc_start_s) - now
        first_second = math.floor(now + self._utc_offset) + 1
        self._next_burst_at = first_second - self._utc_offset + OUTPUT_DELAY_S
        self._line = LineTransmitter(now)
        self._send(now, f"{vendor.upper()} GNSS receiver firmware 1.0 build 42 ready\r\n".encode())

    # -- SerialDeviceModel -------------------------------------------------------------------

    def poll(self, now: float) -> bytes:
        self._schedule(now)
        return self._line.poll(now)

    def next_output_at(self, now: float) -> float | None:
        # No scheduling here: the port calls this outside its lock.  A burst that is
        # already due gives a time in the past, and the port polls at once.
        queued = self._line.next_byte_at()
        return queued if queued is not None else self._next_burst_at

    # -- behaviour -------------------------------------------------------------------------

    def has_fix(self, now: float) -> bool:
        return now - self._started >= self.no_fix_s

    def _schedule(self, now: float) -> None:
        missed = math.floor(now - self._next_burst_at) + 1 - MAX_BACKLOG_BURSTS
        if missed > 0:
            self._next_burst_at += missed
        while self._next_burst_at <= now:
            epoch_utc = round(self._next_burst_at - OUTPUT_DELAY_S + self._utc_offset)
            for body in self._burst(epoch_utc, self.has_fix(self._next_burst_at)):
                self._send(self._next_burst_at, self._sentence(body))
            self.bursts_sent += 1
            self._next_burst_at += 1.0

    def _send(self, at: float, data: bytes) -> None:
        self._line.send(at, data)

    def _sentence(self, body: str) -> bytes:
        data = build_sentence(body)
        if self.corrupt_next > 0:
            self.corrupt_next -= 1
            given = int(data[-4:-2], 16) ^ 0x5A
            data = data[:-4] + b"%02X\r\n" % given
        return data

    def _burst(self, epoch_utc: int, fix: bool) -> list[str]:
        t = self.talker
        gsv_talker = "GP" if t == "GN" else t  # satellites in view are listed per constellation
        when = datetime.fromtimestamp(epoch_utc, UTC)
        hhmmss = when.strftime("%H%M%S.00")
        if not fix:
            return self._vendor_chatter(epoch_utc) + self._no_fix(hhmmss, when.strftime("%d%m%y"))
        lat, ns = format_latitude(self.signals["latitude_deg"].sample())
        lon, ew = format_longitude(self.signals["longitude_deg"].sample())
        altitude = self.signals["altitude_m"].sample()
        phase = (epoch_utc % 600) / 600 * 2 * math.pi
        used = 8 + round(1.5 + 1.5 * math.sin(phase))
        hdop = 0.75 + 0.08 * (12 - used) + self._rng.uniform(0.0, 0.05)
        speed_knots = abs(self._rng.gauss(0.0, 0.05))  # standing still: a little jitter
        course = self._rng.uniform(0.0, 360.0)
        used_prns = ",".join(f"{prn:02d}" for prn in PRNS[:used]) + "," * (12 - used)
        gga = (
            f"{t}GGA,{hhmmss},{lat},{ns},{lon},{ew},{self.fix_quality},{used:02d},{hdop:.2f},"
            f"{altitude:.1f},M,{self.geoid_separation_m:.1f},M,,"
        )
        mode = {6: "E", 7: "M", 8: "S"}.get(self.fix_quality, "A")
        rmc = (
            f"{t}RMC,{hhmmss},A,{lat},{ns},{lon},{ew},{speed_knots:.3f},{course:.2f},"
            f"{when.strftime('%d%m%y')},,,{mode}"
        )
        vtg = f"{t}VTG,{course:.2f},T,,M,{speed_knots:.3f},N,{speed_knots * KNOT_MPS * 3.6:.3f},K,A"
        gsa = f"{t}GSA,A,3,{used_prns},{hdop * 1.6:.2f},{hdop:.2f},{hdop * 1.3:.2f}"
        chatter = self._vendor_chatter(epoch_utc)
        if self.vendor == "mediatek":
            glonass = tuple(range(65, 81))
            return [
                gga,
                gsa,
                f"GLGSA,A,3,{','.join(str(p) for p in glonass[:12])},{hdop * 1.6:.2f},{hdop:.2f},{hdop * 1.3:.2f}",
                *self._gsv("GP", epoch_utc, (*PRNS, 1, 3, 4, 6)),
                *self._gsv("GL", epoch_utc, glonass),
                *chatter,
                rmc,
            ]
        if self.vendor == "ublox":
            gll = f"{t}GLL,{lat},{ns},{lon},{ew},{hhmmss},A,A"
            return [rmc, vtg, gga, gsa, *self._gsv(gsv_talker, epoch_utc), gll, *chatter]
        return [gga, gsa, *self._gsv(gsv_talker, epoch_utc), *chatter, rmc, vtg]

    def _no_fix(self, hhmmss: str, ddmmyy: str) -> list[str]:
        t = self.talker
        if self.vendor == "mediatek":  # a placeholder, not a coordinate (89° 60')
            return [
                f"{t}GGA,{hhmmss},8960.000000,N,00000.000000,E,0,0,,137.000,M,13.000,M,,",
                f"{t}RMC,{hhmmss},V,8960.000000,N,00000.000000,E,0.00,0.00,{ddmmyy},,,N",
            ]
        if self.vendor == "sirf":  # 360° of longitude
            return [
                f"{t}GGA,{hhmmss},0000.0000,N,36000.0000,E,0,00,50.0,0.0,M,0.0,M,,0000",
                f"{t}RMC,{hhmmss},V,0000.0000,N,36000.0000,E,,,{ddmmyy},,,N",
            ]
        return [
            f"{t}GGA,,,,,,0,00,99.99,,,,,,",
            f"{t}GSA,A,1,,,,,,,,,,,,,99.99,99.99,99.99",
            f"{'GP' if t == 'GN' else t}GSV,1,1,00",
            f"{t}RMC,,V,,,,,,,,,,N",
            f"{t}VTG,,,,,,,,,N",
        ]

    def _vendor_chatter(self, epoch_utc: int) -> list[str]:
        """Sentences the driver does not decode and must not hold against the receiver."""
        if self.vendor == "mediatek":
            return [f"SNRSTAT,{epoch_utc % 100},12,38,41", "GYOACC,0.12,-0.03,9.81"]
        if self.vendor == "sirf":
            return ["LOG108,1,0,OK"]
        if self.vendor == "ublox":
            # 18 satellites: SV id, status, azimuth, elevation, C/N0, lock time (the first
            # locked longest), 378 bytes from $ to LF as in the capture.
            body = "PUBX,03,18"
            for i in range(18):
                lock = "00064" if i == 0 else "000"
                body += f",{i + 1:03d},U,{(i * 37) % 360:03d},{(i * 7) % 90:02d},{30 + i % 20:02d},{lock}"
            return [body, "GPTXT,01,01,02,ANTSTATUS=OK u-blox ag - www.u-blox.com"]
        return []

    def _gsv(self, talker: str, epoch_utc: int, prns: tuple[int, ...] = PRNS) -> list[str]:
        pages = [prns[i : i + 4] for i in range(0, len(prns), 4)]
        out = []
        for number, page in enumerate(pages, start=1):
            sats = []
            for prn in page:
                # Slowly moving geometry; signal strength jitters by a few dB-Hz.
                elevation = 10 + (prn * 7 + epoch_utc // 600) % 75
                azimuth = (prn * 29 + epoch_utc // 120) % 360
                snr = min(50, 20 + elevation // 3 + self._rng.randrange(0, 6))
                sats.append(f"{prn:02d},{elevation:02d},{azimuth:03d},{snr:02d}")
            out.append(f"{talker}GSV,{len(pages)},{number},{len(prns):02d}," + ",".join(sats))
        return out
