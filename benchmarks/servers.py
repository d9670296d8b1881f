"""The servers under test, each started as its own process on 127.0.0.1, port 0.

Run one by hand::

    python benchmarks/servers.py echo      # raw websockets echo, library defaults
    python benchmarks/servers.py seed      # the blog's handler, modernised minimally
    python benchmarks/servers.py chatbot --brain echo --db /tmp/bench.sqlite3

Each prints ``... serving on ws://127.0.0.1:PORT/`` (the chatbot: its usual
``Chatbot (echo) serving on http://127.0.0.1:PORT/``) as its first line and serves until
SIGTERM or SIGINT.

``chatbot`` is ``python -m chatbot`` with two limits lifted: the rate limit (5 messages per
second per connection, bursts of 20) and the connection cap (500). A closed-loop benchmark is a
flood by design: with the shipped limits every client is answered ``rate_limited`` after its 20th
message, and the 501st client gets HTTP 503. ``python -m chatbot`` has no flag for either, so this
launcher goes through the same parser and the same :func:`chatbot.cli.run` with those two limits
raised; everything else (brain, store, logging, every other limit) is as shipped.
``run.py --literal-cli`` starts ``python -m chatbot`` itself instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

__all__ = [
    "BENCHMARK_LIMITS",
    "DEFAULT_SERVERS",
    "SERVERS",
    "RunningServer",
    "ServerError",
    "ServerSpec",
    "generate_response",
    "main",
    "start_redis",
    "start_servers",
]

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
STARTUP_TIMEOUT = 30.0  # seconds for a server to print its address
STOP_TIMEOUT = 10.0  # seconds for a server to exit after SIGTERM, before SIGKILL

BENCHMARK_LIMITS = {
    "messages_per_second": 1e9,
    "burst": 1_000_000_000,
    "max_connections": 100_000,
}
"""The :class:`chatbot.Limits` fields this launcher changes; the others keep their defaults."""


class ServerError(Exception):
    """A server under test did not start, or died."""


@dataclass(frozen=True)
class ServerSpec:
    """A server under test.

    Attributes:
        name: short, for tables and JSON (``echo``, ``chatbot-json``...).
        label: what it is, in words.
        mode: how the load generator talks to it: ``"text"`` or ``"json"`` (``chatbot.v1``).
        args: the arguments of ``python benchmarks/servers.py``.
        expect_echo: its replies are the messages themselves (checked by the load generator).
        redis: it keeps its sessions in Redis (``--redis URL``) instead of SQLite: a
            redis-server is started for it (see :func:`start_redis`).
        tree: a folder holding another copy of the ``chatbot`` package (say, the code before
            a change), put first on the server's ``PYTHONPATH``: before and after side by side
            in one run (``prototypes.py measure --before-tree``).
    """

    name: str
    label: str
    mode: Literal["text", "json"]
    args: tuple[str, ...]
    expect_echo: bool = True
    redis: bool = False
    tree: str | None = None

    def command(
        self, db: Path, *, literal_cli: bool = False, redis_url: str | None = None
    ) -> list[str]:
        """The command line that starts this server, with its database at ``db``."""
        if self.args[0] == "prototype":  # benchmarks/prototypes.py: patches, then chatbot args
            rest = [*self.args[2:], "--port", "0", "--db", str(db)]
            return [sys.executable, str(HERE / "prototypes.py"), "serve", self.args[1], *rest]
        if self.args[0] == "chatbot":
            rest = [*self.args[1:], "--port", "0", "--db", str(db)]
            if self.redis:
                if redis_url is None:
                    raise ServerError(f"{self.name} needs a Redis URL")
                rest += ["--redis", redis_url]
            if literal_cli:
                return [sys.executable, "-m", "chatbot", *rest]
            return [sys.executable, str(HERE / "servers.py"), "chatbot", *rest]
        return [sys.executable, str(HERE / "servers.py"), *self.args]


SERVERS: tuple[ServerSpec, ...] = (
    ServerSpec("echo", "raw websockets echo, library defaults", "text", ("echo",)),
    ServerSpec("seed", "seed-style handler: generate_response(message)", "text", ("seed",)),
    ServerSpec(
        "chatbot-text", "chatbot, plain text, echo brain", "text", ("chatbot", "--brain", "echo")
    ),
    ServerSpec(
        "chatbot-json",
        "chatbot, chatbot.v1 JSON, echo brain, sessions persisted",
        "json",
        ("chatbot", "--brain", "echo"),
    ),
    ServerSpec(
        "assistant-json",
        "chatbot, chatbot.v1 JSON, assistant brain (the default), sessions persisted",
        "json",
        ("chatbot", "--brain", "assistant"),
        expect_echo=False,
    ),
    ServerSpec(
        "chatbot-json-power",
        "chatbot, chatbot.v1 JSON, echo brain, --durability power (an fsync per group commit)",
        "json",
        ("chatbot", "--brain", "echo", "--durability", "power"),
    ),
    ServerSpec(
        "chatbot-json-redis",
        "chatbot, chatbot.v1 JSON, echo brain, sessions in Redis (AOF, fsync every second)",
        "json",
        ("chatbot", "--brain", "echo"),
        redis=True,
    ),
    ServerSpec(
        "assistant-json-redis",
        "chatbot, chatbot.v1 JSON, assistant brain, sessions in Redis (AOF, fsync every second)",
        "json",
        ("chatbot", "--brain", "assistant"),
        expect_echo=False,
        redis=True,
    ),
)
"""Every server, in the order a round measures them (before rotation)."""

DEFAULT_SERVERS = tuple(s.name for s in SERVERS if not s.redis and "--durability" not in s.args)
"""What ``run.py`` measures unless told (``--redis`` adds the Redis variants)."""


class RunningServer:
    """A server process that printed its address; :meth:`stop` ends it."""

    def __init__(self, spec: ServerSpec, process: subprocess.Popen[bytes], port: int) -> None:
        self.spec = spec
        self.process = process
        self.port = port
        self.url = f"ws://127.0.0.1:{port}/"

    @property
    def pid(self) -> int:
        """The server's process ID."""
        return self.process.pid

    def alive(self) -> bool:
        """Whether the process is still running."""
        return self.process.poll() is None

    def stop(self) -> int:
        """SIGTERM, wait, SIGKILL if needed; return the exit status."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT)
        if self.process.stdout is not None:
            self.process.stdout.close()
        return self.process.returncode


def _read_first_line(process: subprocess.Popen[bytes], timeout: float) -> str:
    # Read byte by byte up to the first newline, never blocking past the deadline.
    assert process.stdout is not None
    fd = process.stdout.fileno()
    data = b""
    deadline = time.monotonic() + timeout
    while b"\n" not in data and len(data) < 4096:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        readable, _, _ = select.select([fd], [], [], left)
        if not readable:
            break
        chunk = os.read(fd, 1)
        if not chunk:
            break
        data += chunk
    return data.decode(errors="replace").strip()


PORT = re.compile(r"127\.0\.0\.1:(\d+)/?$")


def _start(
    spec: ServerSpec, db: Path, log: IO[bytes], literal_cli: bool, redis_url: str | None = None
) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if spec.tree is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [spec.tree, env.get("PYTHONPATH")]))
    return subprocess.Popen(
        spec.command(db, literal_cli=literal_cli, redis_url=redis_url),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=log,  # a file, not a pipe: a pipe nobody reads fills up and blocks the server
        cwd=ROOT,
        env=env,
    )


@contextlib.contextmanager
def start_servers(
    specs: Sequence[ServerSpec], *, literal_cli: bool = False
) -> Iterator[dict[str, RunningServer]]:
    """Start every server at once (each its own process, fresh database); stop them all after.

    Raises:
        ServerError: a server did not print its address in time (its log is in the message).
    """
    with (
        tempfile.TemporaryDirectory(prefix="chatbot-bench-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        processes: dict[str, tuple[ServerSpec, subprocess.Popen[bytes], Path]] = {}
        running: dict[str, RunningServer] = {}
        redis_url = None
        if any(spec.redis for spec in specs):
            redis_url = stack.enter_context(start_redis(Path(tmp) / "redis"))
        try:
            for number, spec in enumerate(specs):
                log_path = Path(tmp) / f"{spec.name}.log"
                # Each Redis-backed server gets its own database number: no shared keys.
                url = None if redis_url is None else f"{redis_url}/{number}"
                with log_path.open("wb") as log:
                    process = _start(
                        spec, Path(tmp) / f"{spec.name}.sqlite3", log, literal_cli, url
                    )
                processes[spec.name] = (spec, process, log_path)
            for name, (spec, process, log_path) in processes.items():
                line = _read_first_line(process, STARTUP_TIMEOUT)
                match = PORT.search(line)
                if match is None:
                    process.kill()
                    process.wait(STOP_TIMEOUT)
                    raise ServerError(
                        f"server {name} did not print its address; first line {line!r}; "
                        f"its log:\n{log_path.read_text(errors='replace')[-2000:]}"
                    )
                running[name] = RunningServer(spec, process, int(match.group(1)))
            yield running
        finally:
            for _spec, process, _log in processes.values():
                if process.poll() is None:
                    process.terminate()
            for name, (spec, process, _log) in processes.items():
                (running.get(name) or RunningServer(spec, process, 0)).stop()


@contextlib.contextmanager
def start_redis(folder: Path) -> Iterator[str]:
    """A redis-server on a free loopback port, in ``folder``; yield ``redis://127.0.0.1:PORT``.

    Durability like SQLite's WAL with ``synchronous=NORMAL``: an append-only file written before
    each reply (a killed Redis loses nothing acknowledged), fsynced once a second (a power cut
    can lose the last second). No RDB snapshots.
    """
    executable = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(executable).exists():
        raise ServerError("redis-server is not installed (apt-get install redis-server)")
    folder.mkdir(parents=True, exist_ok=True)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [executable, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder),
         "--save", "", "--appendonly", "yes", "--appendfsync", "everysec",
         "--databases", "16", "--daemonize", "no", "--logfile", str(folder / "redis.log")],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise ServerError(f"redis-server did not start on port {port}")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_TIMEOUT)


# --- The servers themselves (run in their own processes by the functions below).


def generate_response(message: str) -> str:
    """The seed's response generator, reduced to an echo: what is measured is the server."""
    return message


async def _serve_until_stopped(kind: str) -> None:
    from websockets.asyncio.server import ServerConnection, serve

    async def echo(websocket: ServerConnection) -> None:
        async for message in websocket:
            await websocket.send(message)

    async def chatbot(websocket: ServerConnection) -> None:
        # The blog's handler with one argument (websockets >= 13 passes only the connection).
        async for message in websocket:
            await websocket.send(generate_response(message))  # type: ignore[arg-type]

    loop = asyncio.get_running_loop()
    stop = loop.create_future()

    def stopping() -> None:
        if not stop.done():
            stop.set_result(None)

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping)
    handler = echo if kind == "echo" else chatbot
    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        print(f"{kind} serving on ws://127.0.0.1:{port}/", flush=True)
        await stop


def _run_chatbot(argv: Sequence[str]) -> int:
    # `python -m chatbot` (chatbot.cli.main) with BENCHMARK_LIMITS: same parser, same run().
    from chatbot import cli
    from chatbot.brains.base import load_brain, shutdown_process_pool
    from chatbot.cli import build_parser, loop_factory, run
    from chatbot.server.limits import Limits

    args = build_parser().parse_args(list(argv))
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    limits = Limits(allowed_origins=tuple(args.allow_origin), **BENCHMARK_LIMITS)  # type: ignore[arg-type]
    name, factory = loop_factory(args.loop)  # as in chatbot.cli.main: uvloop if installed
    logging.getLogger("chatbot.cli").info("event loop: %s", name)
    brain = load_brain(args.brain)
    if hasattr(cli, "tune_gc"):  # as `python -m chatbot` does (not an older --before-tree)
        cli.tune_gc()
    # --durability (issue 16) is passed on when this chatbot has it (not an older --before-tree).
    options = {"durability": args.durability} if hasattr(args, "durability") else {}
    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(
                run(args.host, args.port, brain, db=args.db, limits=limits, redis=args.redis,
                    **options)
            )  # fmt: skip
    finally:
        shutdown_process_pool()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python benchmarks/servers.py {echo,seed,chatbot} [chatbot's options]``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in ("echo", "seed", "chatbot"):
        print("usage: python benchmarks/servers.py {echo,seed,chatbot} [options]", file=sys.stderr)
        return 2
    if args[0] == "chatbot":
        return _run_chatbot(args[1:])
    asyncio.run(_serve_until_stopped(args[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
