"""Event-loop lag while one client drives a CPU-heavy brain: ``python benchmarks/lag.py``.

Starts one chatbot server process whose brain is :class:`LagBrain`: messages that start with
``burn`` go to :func:`burn`, pure-Python arithmetic that takes tens of milliseconds of CPU per
reply, offloaded as ``FunctionBrain(burn, offload=...)`` does it (``process`` by default: the
shared process pool, another core); every other message goes to the default brain (the
assistant: rules, FAQ, ELIZA), on the loop as shipped. Inside the server a
:class:`chatbot.lag.LagMonitor` ticks every millisecond and records how late each tick was:
the loop's lag, the time it was busy with something else.

One client sends ``burn`` messages back to back (closed loop); ``--chatters`` others (100 by
default) chat like a workshop: a line, its whole reply, a pause of 0.2 to 1 second, again. After
a warm-up (connections, the pool's processes), the monitor is reset and the load runs for
``--duration`` seconds. Reports lag p50/p99/max, the burns and chat replies done, and the chat
round trips seen by the chatters.

``--offload thread`` and ``--offload inline`` show what the pool buys: a thread shares the GIL
with the loop (the loop waits for the switch interval, 5 ms, whenever the thread holds it), and
inline burns the loop itself. ``--offload process,thread,inline`` runs all three in turn.

The server is ``chatbot.cli.run`` with the lag monitor beside it, started by this script
(``--serve``), with the rate limit raised (a closed-loop burner would otherwise be answered
``rate_limited``); everything else is as shipped. Writes ``benchmarks/results/lag.json``
(``lag-smoke.json`` with ``--smoke``).

Examples::

    python benchmarks/lag.py                          # process pool, 100 chatters, 10 s
    python benchmarks/lag.py --offload process,thread,inline --duration 5
    python benchmarks/lag.py --smoke                  # a few seconds: what CI runs
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import platform
import random
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from brains import CACM_1966, WORKSHOP_CHAT
from capacity import raise_fd_limit, start_server

from chatbot.brains.assistant import AssistantBrain
from chatbot.brains.base import Brain, Conversation, FunctionBrain, shutdown_process_pool

__all__ = ["LagBrain", "burn", "main", "measure"]

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
SCHEMA = 1
BURN_ROUNDS = 300_000  # about 50 ms of CPU on this machine
TICK = 0.001  # seconds between the monitor's ticks
WARMUP_TIMEOUT = 60.0  # seconds for the connections and the first replies
REPLY_TIMEOUT = 30.0  # seconds for one reply, burns included
SMOKE = {"chatters": 10, "duration": 2.0}


def burn(message: str) -> str:
    """Burn CPU: pure-Python arithmetic, ``burn N`` rounds of it (BURN_ROUNDS by default).

    Module-level and taking ``(message)`` only, so that a process pool can run it.
    """
    words = message.split()
    rounds = int(words[1]) if len(words) > 1 and words[1].isdigit() else BURN_ROUNDS
    total = 0
    for number in range(min(rounds, 100 * BURN_ROUNDS)):
        total = (total + number * number) % 1_000_003
    return f"burned {rounds} rounds: {total}"


class LagBrain(Brain):
    """``burn ...`` messages go to :func:`burn` (offloaded), the others to the assistant.

    Args:
        offload: where :func:`burn` runs: ``"process"``, ``"thread"`` or ``"inline"``.
    """

    name = "lag"

    def __init__(self, offload: str = "process") -> None:
        self.heavy = FunctionBrain(burn, name="burn", offload=offload)  # type: ignore[arg-type]
        self.light = AssistantBrain()

    async def stream(self, message: str, conversation: Conversation) -> AsyncIterator[str]:
        brain = self.heavy if message.startswith("burn") else self.light
        async with contextlib.aclosing(brain.stream(message, conversation)) as chunks:  # type: ignore[type-var]
            async for chunk in chunks:
                yield chunk

    async def aclose(self) -> None:
        await self.light.aclose()


# --- The server -----------------------------------------------------------------------------


async def _serve(offload: str, db: str) -> dict[str, Any]:
    from chatbot import cli
    from chatbot.lag import LagMonitor
    from chatbot.server.limits import Limits

    brain = LagBrain(offload)
    limits = Limits(messages_per_second=1000.0, burst=1000, max_connections=10_000)
    loop = asyncio.get_running_loop()
    async with LagMonitor(TICK) as monitor:
        # SIGUSR1: the warm-up is over, count from now.
        loop.add_signal_handler(signal.SIGUSR1, monitor.reset)
        await cli.run("127.0.0.1", 0, brain, db=db, limits=limits)
    return {"samples": monitor.samples, "lags": sorted(monitor.lags)}


def _serve_main(argv: Sequence[str]) -> int:
    offload, db, lag_out = argv
    try:
        lags = asyncio.run(_serve(offload, db))
    finally:
        shutdown_process_pool()
    Path(lag_out).write_text(json.dumps(lags))
    return 0


# --- The clients ----------------------------------------------------------------------------


class _Client:
    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.number = 0

    async def say(self, text: str) -> bool:
        """Send one message and read up to its ``reply.end``; False if an error came instead."""
        self.number += 1
        frame = {"type": "message", "id": f"m{self.number}", "text": text}
        await self.connection.send(json.dumps(frame))
        async with asyncio.timeout(REPLY_TIMEOUT):
            while True:
                message = json.loads(await self.connection.recv())
                if message["type"] == "reply.end":
                    return True
                if message["type"] == "error":
                    return False


async def _connect(url: str) -> _Client:
    from websockets.asyncio.client import connect
    from websockets.typing import Subprotocol

    connection = await connect(
        url, subprotocols=[Subprotocol("chatbot.v1")], proxy=None, compression=None
    )
    welcome = json.loads(await connection.recv())
    if welcome.get("type") != "welcome":
        raise RuntimeError(f"expected a welcome, got {welcome!r}")
    return _Client(connection)


async def _drive(
    url: str, pid: int, chatters: int, duration: float, burners: int = 1
) -> dict[str, Any]:
    lines = WORKSHOP_CHAT + CACM_1966
    rng = random.Random(2026)
    async with asyncio.timeout(WARMUP_TIMEOUT):
        heavy = [await _connect(url) for _ in range(burners)]
        gate = asyncio.Semaphore(50)

        async def connect_one() -> _Client:
            async with gate:
                return await _connect(url)

        talkers = await asyncio.gather(*(connect_one() for _ in range(chatters)))
        # Warm-up: the pool starts its processes, every brain answers once.
        await asyncio.gather(*(burner.say("burn") for burner in heavy))
        await asyncio.gather(*(client.say(rng.choice(lines)) for client in talkers))
        await asyncio.gather(*(burner.say("burn") for burner in heavy))
    os.kill(pid, signal.SIGUSR1)  # the server's lag monitor counts from here
    stop = time.monotonic() + duration
    burns, failed = 0, 0
    round_trips: list[float] = []

    async def burn_loop(burner: _Client) -> None:
        nonlocal burns, failed
        while time.monotonic() < stop:
            if await burner.say("burn"):
                burns += 1
            else:
                failed += 1

    async def chat_loop(client: _Client, seed: int) -> None:
        nonlocal failed
        chooser = random.Random(seed)
        await asyncio.sleep(chooser.uniform(0, 1))  # do not all start at once
        while time.monotonic() < stop:
            start = time.perf_counter()
            if await client.say(chooser.choice(lines)):
                round_trips.append(time.perf_counter() - start)
            else:
                failed += 1
            await asyncio.sleep(chooser.uniform(0.2, 1.0))

    async with asyncio.timeout(duration + 2 * REPLY_TIMEOUT):
        await asyncio.gather(
            *(burn_loop(burner) for burner in heavy),
            *(chat_loop(client, seed) for seed, client in enumerate(talkers)),
        )
    measured = time.monotonic() - stop + duration
    for client in [*heavy, *talkers]:
        await client.connection.close()
    round_trips.sort()
    return {
        "seconds": round(measured, 2),
        "burns": burns,
        "chat_replies": len(round_trips),
        "failed": failed,
        "chat_round_trip_ms": {
            "p50": round(statistics.median(round_trips) * 1000, 2) if round_trips else None,
            "p99": round(_percentile(round_trips, 0.99) * 1000, 2) if round_trips else None,
        },
    }


def _percentile(sorted_values: Sequence[float], fraction: float) -> float:
    index = max(0, min(len(sorted_values) - 1, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


def measure(offload: str, *, chatters: int, duration: float, burners: int = 1) -> dict[str, Any]:
    """Start a server with :class:`LagBrain`, load it, return its loop's lag and the load done."""
    raise_fd_limit()
    with tempfile.TemporaryDirectory(prefix="lag-") as folder:
        lag_out = Path(folder) / "lag.json"
        command = [
            sys.executable,
            str(HERE / "lag.py"),
            "--serve",
            offload,
            str(Path(folder) / "lag.sqlite3"),
            str(lag_out),
        ]
        with (
            open(Path(folder) / "server.log", "wb") as log,
            start_server(command, stderr=log) as server,
        ):
            load = asyncio.run(_drive(server.url, server.pid, chatters, duration, burners))
            status = server.stop()
        monitored = json.loads(lag_out.read_text()) if lag_out.exists() else {"lags": []}
        server_log = (Path(folder) / "server.log").read_text(errors="replace")
    lags: list[float] = monitored["lags"]
    return {
        "offload": offload,
        "chatters": chatters,
        "burners": burners,
        "tick_ms": TICK * 1000,
        "lag_samples": len(lags),
        "lag_ms": {
            "p50": round(statistics.median(lags) * 1000, 3) if lags else None,
            "p99": round(_percentile(lags, 0.99) * 1000, 3) if lags else None,
            "max": round(lags[-1] * 1000, 3) if lags else None,
        },
        **load,
        "server_exit_status": status,
        "server_log_tail": server_log[-2000:],
    }


def build_parser() -> argparse.ArgumentParser:
    """The parser for ``python benchmarks/lag.py``."""
    parser = argparse.ArgumentParser(
        prog="python benchmarks/lag.py",
        description="The server's event-loop lag while one client drives a CPU-heavy brain.",
    )
    parser.add_argument(
        "--offload", default="process", help="process, thread, inline, comma-separated"
    )
    parser.add_argument("--chatters", type=int, default=100, help="(%(default)s)")
    parser.add_argument(
        "--burners", type=int, default=1, help="clients sending burn messages (%(default)s)"
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds (%(default)s)")
    parser.add_argument("--smoke", action="store_true", help="a few seconds: what CI runs")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the JSON report")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Measure each offload mode, print, write the JSON report; return the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--serve"]:
        return _serve_main(argv[1:])
    args = build_parser().parse_args(argv)
    chatters, duration = (
        (SMOKE["chatters"], SMOKE["duration"]) if args.smoke else (args.chatters, args.duration)
    )
    modes = [mode.strip() for mode in args.offload.split(",") if mode.strip()]
    for mode in modes:
        if mode not in ("process", "thread", "inline"):
            print(f"error: unknown offload {mode!r}: process, thread or inline", file=sys.stderr)
            return 2
    runs = []
    print(
        f"{'offload':<8} {'lag p50 ms':>10} {'p99 ms':>8} {'max ms':>8} {'burns':>6} "
        f"{'chats':>6} {'chat p99 ms':>11} {'failed':>6}"
    )
    for mode in modes:
        figures = measure(
            mode, chatters=int(chatters), duration=float(duration), burners=args.burners
        )
        runs.append(figures)
        lag = figures["lag_ms"]
        print(
            f"{mode:<8} {lag['p50']:>10} {lag['p99']:>8} {lag['max']:>8} {figures['burns']:>6} "
            f"{figures['chat_replies']:>6} {figures['chat_round_trip_ms']['p99']:>11} "
            f"{figures['failed']:>6}"
        )
    report = {
        "schema": SCHEMA,
        "what": "event-loop lag of one chatbot server: one client burning CPU, others chatting",
        "command": [sys.executable, *sys.argv],
        "when": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
        "duration": duration,
        "runs": runs,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / ("lag-smoke.json" if args.smoke else "lag.json")
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {path}")
    failed = any(run["server_exit_status"] != 0 or not run["lag_samples"] for run in runs)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
