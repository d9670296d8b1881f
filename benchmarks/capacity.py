"""How much memory one idle connection costs the server: ``python benchmarks/capacity.py``.

Starts ONE ``python -m chatbot`` process as shipped (127.0.0.1, port 0, ``--db`` in a temporary
folder, ``--max-connections`` raised, the default brain), then opens idle ``chatbot.v1``
connections to it from separate client processes. Each connection waits for its ``welcome``:
by then the server has created its session in the store and attached its private conversation
(the brain's state included), so an idle connection here is what a learner who opened the page
and said nothing costs.

The server's resident memory (RSS, through psutil) is read three times: at start, after a
first batch of connections (``--warm``, default 1 %), and after all of them. The figure is the
*marginal* cost: (RSS after all - RSS after the first batch) / (connections - first batch), so
one-time costs (lazy imports, the first SQLite pages, the brain's data) do not count. The plain
average over all connections is reported too.

Every client process raises its open-file limit to the hard limit (``resource``); so does this
script before it starts the server, which inherits it. 10,000 connections need 10,000
descriptors in the server.

Writes ``benchmarks/results/capacity.json`` (``capacity-smoke.json`` with ``--smoke``).

Examples::

    python benchmarks/capacity.py                       # 10,000 connections
    python benchmarks/capacity.py --connections 2000 --processes 2
    python benchmarks/capacity.py --smoke               # 300 connections: what CI runs
    python benchmarks/capacity.py --tracemalloc 10      # where the memory goes (slower)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import multiprocessing
import os
import platform
import queue
import resource
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
SCHEMA = 1
STARTUP_TIMEOUT = 30.0  # seconds for the server to print its address
STOP_TIMEOUT = 15.0  # seconds for the server to exit after SIGTERM, before SIGKILL
OPEN_TIMEOUT = 60.0  # seconds for one connection's handshake and welcome (a busy server is slow)
COMMAND_TIMEOUT = 600.0  # seconds for a client process to carry out one command
IN_FLIGHT = 96  # handshakes in flight, all client processes together (the listen backlog is 100)
SMOKE = {"connections": 300, "processes": 2, "warm": 30}

__all__ = ["RunningServer", "main", "measure", "raise_fd_limit", "start_server"]


def raise_fd_limit() -> int:
    """Raise this process's soft open-file limit to its hard limit; return the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            return hard
    return soft


# --- The server -----------------------------------------------------------------------------


@dataclass
class RunningServer:
    """A server process that printed its address; :meth:`stop` ends it."""

    process: subprocess.Popen[bytes]
    url: str  # ws://127.0.0.1:PORT/
    first_line: str

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> int:
        """SIGTERM, wait (SIGKILL after STOP_TIMEOUT); return the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT)
        return self.process.returncode


def _read_line(stream: IO[bytes], process: subprocess.Popen[bytes], timeout: float) -> str:
    deadline = time.monotonic() + timeout
    line = b""
    while not line.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or process.poll() is not None:
            raise RuntimeError(
                f"the server did not print its address within {timeout:.0f} s "
                f"(exit status {process.poll()}); got {line!r}"
            )
        ready, _, _ = select.select([stream], [], [], min(left, 0.5))
        if ready:
            byte = os.read(stream.fileno(), 1)
            if not byte:
                continue
            line += byte
    return line.decode().strip()


@contextlib.contextmanager
def start_server(
    command: Sequence[str], *, stderr: IO[bytes] | None = None, env: dict[str, str] | None = None
) -> Iterator[RunningServer]:
    """Start a chatbot server process, wait for its address line, stop it on exit.

    The first line must end with ``serving on http://HOST:PORT/`` (what ``python -m chatbot``
    prints); the WebSocket URL is made from it.
    """
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=stderr, cwd=ROOT, env=env, start_new_session=True
    )
    try:
        assert process.stdout is not None
        first = _read_line(process.stdout, process, STARTUP_TIMEOUT)
        if " serving on http://" not in first:
            raise RuntimeError(f"unexpected first line from the server: {first!r}")
        url = "ws://" + first.rsplit("http://", 1)[1]
        yield RunningServer(process, url, first)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(STOP_TIMEOUT)
        if process.stdout is not None:
            process.stdout.close()


# --- The client processes -------------------------------------------------------------------


async def _open_one(url: str, gate: asyncio.Semaphore) -> Any:
    from websockets.asyncio.client import connect
    from websockets.typing import Subprotocol

    async with gate, asyncio.timeout(OPEN_TIMEOUT):
        connection = await connect(
            url,
            subprotocols=[Subprotocol("chatbot.v1")],
            proxy=None,
            compression=None,
            open_timeout=OPEN_TIMEOUT,
        )
        try:
            welcome = json.loads(await connection.recv())
            if welcome.get("type") != "welcome" or not welcome.get("session"):
                raise RuntimeError(f"expected a welcome with a session, got {welcome!r}")
        except BaseException:
            await connection.close()
            raise
        return connection


async def _client_main(url: str, in_flight: int, commands: Any, replies: Any) -> None:
    connections: list[Any] = []
    gate = asyncio.Semaphore(in_flight)
    errors: dict[str, int] = {}
    try:
        while True:
            # The commands queue is a multiprocessing queue: read it in a thread, bounded.
            command = await asyncio.to_thread(commands.get, True, COMMAND_TIMEOUT)
            if command[0] == "open":
                results = await asyncio.gather(
                    *(_open_one(url, gate) for _ in range(command[1])), return_exceptions=True
                )
                for result in results:
                    if isinstance(result, BaseException):
                        kind = type(result).__name__
                        errors[kind] = errors.get(kind, 0) + 1
                    else:
                        connections.append(result)
                replies.put(("opened", len(connections), dict(errors)))
            elif command[0] == "close":
                break
    finally:
        # Close in batches: 5,000 closing handshakes at once would only queue up.
        for start in range(0, len(connections), 500):
            batch = connections[start : start + 500]
            await asyncio.gather(*(c.close() for c in batch), return_exceptions=True)
        replies.put(("closed", len(connections), dict(errors)))


def _client_process(url: str, in_flight: int, commands: Any, replies: Any) -> None:
    raise_fd_limit()
    asyncio.run(_client_main(url, in_flight, commands, replies))


class Clients:
    """Client processes holding idle connections, driven by commands."""

    def __init__(self, url: str, processes: int) -> None:
        context = multiprocessing.get_context("spawn")
        in_flight = max(1, IN_FLIGHT // processes)
        self.workers = []
        for _ in range(processes):
            commands, replies = context.Queue(), context.Queue()
            process = context.Process(
                target=_client_process, args=(url, in_flight, commands, replies), daemon=True
            )
            process.start()
            self.workers.append((process, commands, replies))

    def _ask(self, commands: list[tuple[Any, ...]]) -> tuple[int, dict[str, int]]:
        for (_, orders, _), command in zip(self.workers, commands, strict=True):
            orders.put(command)
        total, errors = 0, {}
        deadline = time.monotonic() + COMMAND_TIMEOUT
        for process, _, replies in self.workers:
            while True:  # bounded: a dead process or the deadline ends the wait
                try:
                    _, count, kinds = replies.get(timeout=1.0)
                    break
                except queue.Empty:
                    if not process.is_alive() or time.monotonic() > deadline:
                        raise RuntimeError(
                            f"client process {process.pid} did not answer "
                            f"(exit code {process.exitcode})"
                        ) from None
            total += count
            for kind, number in kinds.items():
                errors[kind] = errors.get(kind, 0) + number
        return total, errors

    def open(self, count: int) -> tuple[int, dict[str, int]]:
        """Open ``count`` more connections, spread over the processes; return how many are open
        in all, and the errors so far by kind."""
        share = [count // len(self.workers)] * len(self.workers)
        for index in range(count % len(self.workers)):
            share[index] += 1
        return self._ask([("open", n) for n in share])

    def close(self) -> tuple[int, dict[str, int]]:
        """Close every connection and end the processes."""
        try:
            return self._ask([("close",)] * len(self.workers))
        finally:
            for process, _, _ in self.workers:
                process.join(STOP_TIMEOUT)
                if process.is_alive():
                    process.kill()


# --- Measuring ------------------------------------------------------------------------------


def _rss(pid: int) -> int:
    import psutil  # type: ignore[import-untyped]

    return int(psutil.Process(pid).memory_info().rss)


def _settled_rss(pid: int, seconds: float = 1.0) -> int:
    # The last of a few readings a short moment apart: buffers of the handshakes just done are
    # freed by then.
    rss = _rss(pid)
    for _ in range(int(seconds / 0.25)):
        time.sleep(0.25)
        rss = _rss(pid)
    return rss


def measure(
    connections: int,
    *,
    processes: int,
    warm: int,
    brain: str = "assistant",
    tracemalloc_frames: int = 0,
    quiet: bool = False,
) -> dict[str, Any]:
    """Start a server, open ``connections`` idle connections to it, measure its memory.

    Returns:
        The figures (``kib_per_connection`` and the readings behind it) as a dict.
    """
    say = (lambda *args: None) if quiet else (lambda *args: print(*args, flush=True))
    raise_fd_limit()
    with tempfile.TemporaryDirectory(prefix="capacity-") as folder:
        command = [sys.executable, "-m", "chatbot", *command_tail(connections, folder, brain)]
        env = dict(os.environ)
        snapshot = Path(folder) / "tracemalloc.txt"
        if tracemalloc_frames:
            # The same command line under tracemalloc (see _serve).
            env["PYTHONTRACEMALLOC"] = str(tracemalloc_frames)
            serve = [sys.executable, str(HERE / "capacity.py"), "--serve", str(snapshot)]
            command = [*serve, *command[3:]]  # the same arguments, after `-m chatbot`
        with (
            open(Path(folder) / "server.log", "wb") as log,
            start_server(command, stderr=log, env=env) as server,
        ):
            say(f"server pid {server.pid}: {server.first_line}")
            rss_start = _settled_rss(server.pid, 0.5)
            clients = Clients(server.url, processes)
            try:
                started = time.monotonic()
                opened, errors = clients.open(warm)
                rss_warm = _settled_rss(server.pid)
                say(f"{opened} connections open; server RSS {rss_warm / 2**20:.1f} MiB")
                if tracemalloc_frames:  # count from here, as the RSS figure does
                    server.process.send_signal(signal.SIGUSR2)
                opened, errors = clients.open(connections - warm)
                open_seconds = time.monotonic() - started
                rss_all = _settled_rss(server.pid, 2.0)
                say(
                    f"{opened} connections open in {open_seconds:.1f} s; server RSS "
                    f"{rss_all / 2**20:.1f} MiB; errors {errors or 'none'}"
                )
                top = ""
                if tracemalloc_frames:
                    server.process.send_signal(signal.SIGUSR1)
                    deadline = time.monotonic() + 120
                    while not snapshot.exists() and time.monotonic() < deadline:
                        time.sleep(0.25)
                    time.sleep(0.5)
                    top = snapshot.read_text() if snapshot.exists() else "(no snapshot)"
            finally:
                closed, _ = clients.close()
            status = server.stop()
        server_log = (Path(folder) / "server.log").read_text(errors="replace")
    marginal = (rss_all - rss_warm) / max(1, opened - warm)
    return {
        "connections": connections,
        "opened": opened,
        "closed": closed,
        "errors": errors,
        "processes": processes,
        "warm": warm,
        "brain": brain,
        "open_seconds": round(open_seconds, 2),
        "rss_start_bytes": rss_start,
        "rss_warm_bytes": rss_warm,
        "rss_all_bytes": rss_all,
        "kib_per_connection": round(marginal / 1024, 2),
        "kib_per_connection_average": round((rss_all - rss_start) / max(1, opened) / 1024, 2),
        "server_exit_status": status,
        "server_log_tail": server_log[-2000:],
        "tracemalloc_top": top,
    }


def command_tail(connections: int, folder: str, brain: str) -> list[str]:
    """The ``python -m chatbot`` arguments of the measured server, after the program name."""
    return [
        "--port",
        "0",
        "--db",
        str(Path(folder) / "capacity.sqlite3"),
        "--max-connections",
        str(connections + 100),
        "--brain",
        brain,
        "--log-level",
        "warning",
    ]


def _serve(snapshot: str, argv: list[str]) -> int:
    """``--serve FILE ARGS``: ``python -m chatbot ARGS`` under tracemalloc. SIGUSR2 takes a
    baseline; SIGUSR1 writes the allocations that grew most since then, by line, to FILE."""
    import tracemalloc

    from chatbot import cli

    baseline: list[Any] = []

    def dump(*_: object) -> None:
        now = tracemalloc.take_snapshot()
        stats = now.compare_to(baseline[0], "lineno") if baseline else now.statistics("lineno")
        lines = [str(stat) for stat in stats[:40]]
        by_file = now.compare_to(baseline[0], "filename") if baseline else []
        lines += ["", "By file:"] + [str(stat) for stat in by_file[:25]]
        traced, peak = tracemalloc.get_traced_memory()
        lines.append(f"traced {traced / 2**20:.1f} MiB, peak {peak / 2**20:.1f} MiB")
        Path(snapshot).write_text("\n".join(lines) + "\n")

    def take_baseline(*_: object) -> None:
        baseline[:] = [tracemalloc.take_snapshot()]

    signal.signal(signal.SIGUSR1, dump)
    signal.signal(signal.SIGUSR2, take_baseline)
    take_baseline()
    return cli.main(argv)


def build_parser() -> argparse.ArgumentParser:
    """The parser for ``python benchmarks/capacity.py``."""
    parser = argparse.ArgumentParser(
        prog="python benchmarks/capacity.py",
        description="Memory per idle chatbot.v1 connection to one python -m chatbot process.",
    )
    parser.add_argument("--connections", type=int, default=10_000, help="(%(default)s)")
    parser.add_argument("--processes", type=int, default=4, help="client processes (%(default)s)")
    parser.add_argument(
        "--warm", type=int, default=None, help="first batch, not counted (default: 1 %%)"
    )
    parser.add_argument("--brain", default="assistant", help="the server's brain (%(default)s)")
    parser.add_argument(
        "--tracemalloc",
        type=int,
        metavar="FRAMES",
        default=0,
        help="run the server under tracemalloc and print where the memory went (slower)",
    )
    parser.add_argument("--smoke", action="store_true", help="300 connections: what CI runs")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the JSON report")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Measure, print, write the JSON report; return the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--serve"]:
        return _serve(argv[1], argv[2:])
    args = build_parser().parse_args(argv)
    if args.smoke:
        connections, processes, warm = (
            SMOKE["connections"],
            SMOKE["processes"],
            SMOKE["warm"],
        )
    else:
        connections, processes = args.connections, args.processes
        warm = args.warm if args.warm is not None else max(1, connections // 100)
    if not 0 < warm < connections:
        print(f"error: --warm must be between 1 and {connections - 1}", file=sys.stderr)
        return 2
    figures = measure(
        connections,
        processes=processes,
        warm=warm,
        brain=args.brain,
        tracemalloc_frames=args.tracemalloc,
    )
    print(
        f"{figures['opened']} idle connections: {figures['kib_per_connection']} KiB each "
        f"(marginal, after the first {warm}); {figures['kib_per_connection_average']} KiB each "
        f"on average from start-up"
    )
    if figures["tracemalloc_top"]:
        print("Where the memory went (tracemalloc, since start-up, by line):")
        print(figures["tracemalloc_top"])
    report = {
        "schema": SCHEMA,
        "what": "server RSS per idle chatbot.v1 connection (session created), one process",
        "command": [sys.executable, *sys.argv],
        "when": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
        **figures,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / ("capacity-smoke.json" if args.smoke else "capacity.json")
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {path}")
    failed = figures["opened"] != connections or figures["server_exit_status"] != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
