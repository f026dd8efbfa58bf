"""Child process of test_crash: appends as fast as it can and prints ``seq id`` for each
event once ``submit`` has returned (= committed), until it is killed."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from edge_agent.outbox import Outbox, OutboxWriter

from .helpers import BOOT, alarm, reading


async def main(path: Path) -> None:
    outbox = await Outbox.open(path, max_bytes=10**12, max_age_s=10**9, boot=BOOT)
    writer = OutboxWriter(outbox, max_batch=200)
    runner = asyncio.create_task(writer.run())
    print(f"epoch {outbox.epoch} {outbox.next_seq}", flush=True)

    async def producer(k: int) -> None:
        i = 0
        while True:
            event = alarm(i) if i % 50 == 0 else reading(i, sensor=f"s{k}")
            stored = await writer.submit(event)
            sys.stdout.write(f"{stored.seq} {stored.envelope['id']}\n")
            sys.stdout.flush()
            i += 1

    await asyncio.gather(runner, *(producer(k) for k in range(8)))


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
