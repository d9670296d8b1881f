"""Issue 14, the protocol and the hub: what an attack within the limits costs the server.

Each measurement runs twice: ``before`` (the server as it was, the fix undone in the server
process) and ``after`` (the server as shipped), and prints both. Timings belong here, not in
tests: the tests (tests/test_protocol_abuse.py) measure work without a clock.

    python benchmarks/attacks.py parse      # the JSON nesting check: cost per frame shape
    python benchmarks/attacks.py brackets   # a fresh client's handshake while 20 clients send
                                            # 64 kB "[[[[..." frames within their rate limit
    python benchmarks/attacks.py pings      # server memory: a client sends 100 MB of pings and
                                            # never reads
    python benchmarks/attacks.py resumes    # server memory: 8 clients that never read ask 25
                                            # times each for a 1.6 MB history
    python benchmarks/attacks.py sessions   # session rows after 2,000 handshakes that never
                                            # send anything
    python benchmarks/attacks.py            # all of them

Figures from a 2-core machine are in docs/security.md ("The protocol and the hub").
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chatbot.server import protocol  # noqa: E402
from chatbot.server.limits import Limits  # noqa: E402

ATTACKERS = 20
FRAME = "[" * 65_000  # under the 64 KiB frame limit


def old_depth(frame: str) -> int:
    """The nesting check before issue 14: a Python loop, one step per character."""
    depth = deepest = 0
    in_string = escaped = False
    for char in frame:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def undo_nesting_fix() -> None:
    """Put the old nesting check back (the ``before`` server)."""
    protocol._nesting_ok = lambda frame: old_depth(frame) <= protocol.MAX_DEPTH


def undo_session_fix() -> None:
    """Store every session at its handshake again, used or not (the ``before`` server)."""
    from chatbot.server.hub import Hub

    welcome = Hub._welcome

    async def write_at_once(self: Hub, client: Any) -> bool:
        return await welcome(self, client) and (await self._keep(client) is None)

    Hub._welcome = write_at_once  # type: ignore[method-assign]


def limits(before: bool) -> Limits:
    """The server's limits: without the byte limits for the ``before`` server (no history pages,
    no outbox bytes, no bound on unsent bytes), the shipped ones otherwise."""
    if not before:
        return Limits()
    unbounded = 1 << 40
    return Limits(
        history_page_bytes=unbounded, send_queue_bytes=unbounded, write_buffer_bytes=unbounded
    )


SHAPES = {
    "plain 64 kB message": '{"type": "message", "text": "' + "a" * 64_000 + '"}',
    "65,000 [": FRAME,
    "32,500 []": "[]" * 32_500,
    "1,000 arrays 32 deep": ("[" * 32 + "]" * 32) * 1_000,
    "objects 10,000 deep": '{"a":' * 10_000 + "1" + "}" * 10_000,
    "[ inside a string": '{"type": "message", "text": "' + "[" * 64_000 + '"}',
    "16,000 strings": '{"type": "message", "text": "hi", "x": [' + '"[",' * 16_000 + "1]}",
}


def parse_cost(frame: str, rounds: int = 50) -> float:
    """Median milliseconds for ``protocol.parse(frame)``, errors included."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        with contextlib.suppress(protocol.ProtocolError):
            protocol.parse(frame, max_chars=4000)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def bench_parse() -> None:
    after = {name: parse_cost(frame) for name, frame in SHAPES.items()}
    fixed = protocol._nesting_ok
    undo_nesting_fix()
    before = {name: parse_cost(frame) for name, frame in SHAPES.items()}
    protocol._nesting_ok = fixed
    print("protocol.parse(), median of 50, milliseconds")
    print(f"{'frame':24} {'before':>8} {'after':>8}")
    for name in SHAPES:
        print(f"{name:24} {before[name]:8.3f} {after[name]:8.3f}")


SERVER = """
import asyncio, os, sys, tempfile
sys.path.insert(0, {root!r})
sys.path.insert(0, {here!r})
import attacks
if {before!r}:
    attacks.undo_nesting_fix()
    attacks.undo_session_fix()
from chatbot import serve
from chatbot.storage.sqlite import Store

async def main():
    path = os.path.join(tempfile.mkdtemp(), "chat.sqlite3")
    store = await Store.open(path)
    for _ in range({history!r}):
        await store.append("room:lobby", "user", "Ada", "é" * 4000)
    async with serve(port=0, store=store, limits=attacks.limits({before!r})) as server:
        print(server.port, os.getpid(), path, flush=True)
        await asyncio.Event().wait()

asyncio.run(main())
"""


@contextlib.asynccontextmanager
async def server_process(before: bool, history: int = 0) -> AsyncIterator[str]:
    """A chatbot server in its own process (its own CPU); yields its ws:// URL.

    ``history``: messages of 4,000 "é" (8,000 bytes) stored in room "lobby" first.
    """
    code = SERVER.format(
        root=str(ROOT), here=str(ROOT / "benchmarks"), before=before, history=history
    )
    process = subprocess.Popen(  # noqa: ASYNC220 (started once, before measuring)
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    try:
        assert process.stdout is not None
        port, pid, path = (await asyncio.to_thread(process.stdout.readline)).split()
        SERVER_PIDS[f"ws://127.0.0.1:{int(port)}/"] = int(pid)
        SERVER_DBS[f"ws://127.0.0.1:{int(port)}/"] = path
        yield f"ws://127.0.0.1:{int(port)}/"
    finally:
        process.terminate()
        process.wait(10)


async def attacker(url: str, frame: str, stop: asyncio.Event) -> None:
    """Send ``frame`` as fast as the rate limit allows (a burst of 20, then 5 per second)."""
    from websockets.asyncio.client import connect

    async with connect(url, subprotocols=[protocol.PROTOCOL], max_size=None) as ws:  # type: ignore[list-item]
        await ws.recv()  # welcome
        for _ in range(20):
            await ws.send(frame)
        while not stop.is_set():
            await ws.send(frame)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.2)


async def handshakes(url: str, count: int) -> list[float]:
    """Seconds for a fresh client to connect and get its ``welcome``, ``count`` times."""
    from websockets.asyncio.client import connect

    times = []
    for _ in range(count):
        start = time.perf_counter()
        async with connect(url, subprotocols=[protocol.PROTOCOL], open_timeout=60) as ws:  # type: ignore[list-item]
            await ws.recv()
        times.append(time.perf_counter() - start)
        await asyncio.sleep(0.25)
    return times


async def under_attack(before: bool, frame: str) -> list[float]:
    async with server_process(before) as url:
        quiet = await handshakes(url, 3)
        stop = asyncio.Event()
        attack = [asyncio.create_task(attacker(url, frame, stop)) for _ in range(ATTACKERS)]
        await asyncio.sleep(0.5)
        loud = await handshakes(url, 12)
        stop.set()
        await asyncio.gather(*attack, return_exceptions=True)
        return quiet + loud


def bench_brackets() -> None:
    print(f"a fresh client's handshake + welcome, {ATTACKERS} clients sending 65,000 '[' frames")
    print(f"{'server':8} {'quiet':>10} {'median':>10} {'max':>10}   (seconds, under attack)")
    for before in (True, False):
        times = asyncio.run(under_attack(before, FRAME))
        quiet, loud = times[:3], times[3:]
        print(
            f"{'before' if before else 'after':8} {statistics.median(quiet):10.3f} "
            f"{statistics.median(loud):10.3f} {max(loud):10.3f}"
        )


SERVER_PIDS: dict[str, int] = {}
SERVER_DBS: dict[str, str] = {}  # url -> the server's SQLite file


def memory(url: str) -> tuple[float, float]:
    """The server's resident memory now, and its peak, in MiB (Linux: /proc)."""
    status = Path(f"/proc/{SERVER_PIDS[url]}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines())
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


async def stuck(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A chatbot.v1 connection from a client that never reads (a 4 kB receive buffer)."""
    import socket

    port = int(url.rsplit(":", 1)[1].strip("/"))
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock, limit=1024)
    writer.write(
        f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: chatbot.v1\r\n\r\n".encode()
    )
    await reader.readuntil(b"\r\n\r\n")
    return reader, writer


def masked(opcode: Any, data: bytes) -> bytes:
    from websockets.frames import Frame

    return Frame(opcode, data).serialize(mask=True, extensions=[])


async def ping_flood(before: bool, megabytes: int = 100) -> tuple[float, float, str]:
    from websockets.frames import Opcode

    async with server_process(before) as url:
        start = memory(url)[0]
        _, writer = await stuck(url)
        chunk = masked(Opcode.PING, b"p" * 125) * 8000  # 1 MB
        sent = 0
        with contextlib.suppress(ConnectionError):
            while sent < megabytes:
                writer.write(chunk)
                await writer.drain()
                sent += 1
        await asyncio.sleep(1)  # a benchmark: let the server take in what was sent
        now, peak = memory(url)
        writer.transport.abort()
        return now - start, peak - start, f"{sent} MB sent"


async def resume_flood(
    before: bool, clients: int = 8, resumes: int = 25
) -> tuple[float, float, str]:
    from websockets.asyncio.client import connect
    from websockets.frames import Opcode

    async with server_process(before, history=200) as url:
        start = memory(url)[0]
        async with connect(url, subprotocols=[protocol.PROTOCOL], max_size=None) as owner:  # type: ignore[list-item]
            session = json.loads(await owner.recv())["session"]
            await owner.send(json.dumps({"type": "join", "room": "lobby"}))
            await owner.recv()
            frame = masked(Opcode.TEXT, json.dumps({"type": "resume", "session": session}).encode())
            writers = [(await stuck(url))[1] for _ in range(clients)]
            for writer in writers:
                writer.write(frame * resumes)
            await asyncio.sleep(6)  # the figure: after 6 s
            now, peak = memory(url)
            for writer in writers:
                writer.transport.abort()
        return now - start, peak - start, f"{clients} clients x {resumes} resumes"


def bench_memory(name: str, flood: Callable[[bool], Any]) -> None:
    print(f"server memory under the {name} flood (MiB over the idle server)")
    print(f"{'server':8} {'now':>8} {'peak':>8}")
    for before in (True, False):
        now, peak, what = asyncio.run(flood(before))
        print(f"{'before' if before else 'after':8} {now:8.1f} {peak:8.1f}   {what}")


async def silent_handshakes(before: bool, count: int = 2_000) -> int:
    """Session rows in the server's SQLite file after ``count`` handshakes that say nothing."""
    from websockets.asyncio.client import connect

    async with server_process(before) as url:
        for _ in range(count):
            async with connect(url, subprotocols=[protocol.PROTOCOL]) as ws:  # type: ignore[list-item]
                await ws.recv()  # welcome
        with contextlib.closing(sqlite3.connect(SERVER_DBS[url])) as db:
            return int(db.execute("SELECT COUNT(*) FROM sessions").fetchone()[0])


def bench_sessions() -> None:
    print("session rows after 2,000 handshakes that never send a message")
    for before in (True, False):
        print(f"{'before' if before else 'after':8} {asyncio.run(silent_handshakes(before)):>6}")


BENCHES: dict[str, Callable[[], Any]] = {
    "parse": bench_parse,
    "brackets": bench_brackets,
    "pings": lambda: bench_memory("ping", ping_flood),
    "resumes": lambda: bench_memory("resume", resume_flood),
    "sessions": bench_sessions,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bench", nargs="*", choices=[*BENCHES, []], help="what to measure")
    args = parser.parse_args(argv)
    for name in args.bench or BENCHES:
        BENCHES[name]()
        print()


if __name__ == "__main__":
    main()
