"""What claiming a name costs Redis as a room grows: ``python benchmarks/names.py``.

Behind several processes (notebook 08), joining a room claims the name in Redis with a Lua script
(``chatbot.storage.redis.CLAIM``), and Redis runs one script at a time: a claim that cost more as
the room grew would hold up every process's Redis calls during a join storm. This fills a room
with names held by one process's fan-out, then times claims of new names by another's, for each
room size. Two figures per size: Redis's own time per claim (``INFO commandstats``, what every
other client waits for) and the round trip as the claiming process sees it. The last column is
Redis's time over the smallest room's: it should stay near 1.

Until session 20 a claim read every name of the room and checked each holder's heartbeat: this
script gave 6,664 µs of Redis per claim in a room of 5,000 names (22x the smallest room), against
6 µs now (one name read, whatever the room's size).

Examples::

    python benchmarks/names.py                  # rooms of 10, 1,000 and 5,000 names
    python benchmarks/names.py --smoke          # what CI runs: two small rooms, a few claims
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from servers import start_redis

from chatbot.storage.redis import RedisFanout

PREFIX = "names-benchmark:"


async def _redis_usec(fanout: RedisFanout) -> tuple[int, int]:
    """Calls and microseconds of EVAL that Redis counted since its last CONFIG RESETSTAT."""
    stats = await fanout._redis.info("commandstats")
    row = stats.get("cmdstat_eval", {"calls": 0, "usec": 0})
    return int(row["calls"]), int(row["usec"])


async def measure(url: str, sizes: Sequence[int], claims: int) -> list[dict[str, float]]:
    """For each room size, the µs per claim in Redis and per round trip (see the module)."""
    holder = await RedisFanout.open(url, prefix=PREFIX)
    joiner = await RedisFanout.open(url, prefix=PREFIX)
    rows = []
    try:
        for size in sizes:
            room = f"room-{size}"
            for number in range(size):  # the members already there, on another process
                await holder.claim(room, f"member-{number}", f"session-{number}")
            await joiner._redis.config_resetstat()
            start = time.perf_counter()
            for number in range(claims):
                if not await joiner.claim(room, f"newcomer-{number}", f"new-{number}"):
                    raise RuntimeError(f"a free name was refused in {room}")
            elapsed = time.perf_counter() - start
            calls, usec = await _redis_usec(joiner)
            rows.append(
                {
                    "names": size,
                    "redis_us": usec / calls,
                    "round_trip_us": elapsed / claims * 1e6,
                }
            )
    finally:
        await joiner.close()
        await holder.close()
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    """Start a redis-server, measure, print the table."""
    parser = argparse.ArgumentParser(prog="python benchmarks/names.py", description=__doc__)
    parser.add_argument("--sizes", default="10,1000,5000", help="room sizes (%(default)s)")
    parser.add_argument("--claims", type=int, default=500, help="claims timed per size")
    parser.add_argument("--smoke", action="store_true", help="rooms of 10 and 100, 20 claims")
    args = parser.parse_args(argv)
    sizes = [10, 100] if args.smoke else [int(size) for size in args.sizes.split(",")]
    claims = 20 if args.smoke else args.claims
    with tempfile.TemporaryDirectory() as folder, start_redis(Path(folder)) as url:
        rows = asyncio.run(measure(url, sizes, claims))
    header = ("names in the room", "Redis µs/claim", "round trip µs", "x smallest")
    print("{:>17} {:>15} {:>14} {:>11}".format(*header))
    for row in rows:
        ratio = row["redis_us"] / rows[0]["redis_us"]
        print(
            f"{row['names']:>17} {row['redis_us']:>15.1f} {row['round_trip_us']:>14.0f}"
            f" {ratio:>11.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
