"""A real Redis for the tests: Debian's ``redis-server`` on a free loopback port, in a temp folder.

One server per test session (the ``redis_url`` fixture); each test uses its own key prefix, so
tests never see each other's data. Nothing is written to disk (``--save ''``, no AOF).
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from chatbot.brains.base import BrainLike
from chatbot.server.app import serve
from chatbot.server.base import ChatServer, echo
from chatbot.storage.redis import open_redis

STARTUP_TIMEOUT = 10.0

MISSING = (
    "redis-server is not installed, and the Redis tests and notebook 08 need a real one: "
    "`sudo apt-get install redis-server` on Debian or Ubuntu (.ci/run does), `brew install "
    "redis` on macOS, or put redis-server on PATH"
)


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def redis_executable() -> str | None:
    """Where ``redis-server`` is on this machine, if it is."""
    return shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
    )


def redis_required() -> bool:
    """In CI (``CI`` is set, as by .ci/run, which installs it) a missing Redis is a failure.

    On a learner's machine without it, the Redis tests and notebook 08 are skipped, saying how
    to install it: pip cannot, and the rest of the suite is worth running anyway.
    """
    return bool(os.environ.get("CI"))


def require_redis() -> None:
    """Skip the calling test when redis-server is missing, but in CI (there, it fails)."""
    if redis_executable() is None and not redis_required():
        pytest.skip(MISSING)


class RedisServer:
    """A ``redis-server`` child process listening on 127.0.0.1 only."""

    def __init__(self, folder: Path, port: int | None = None) -> None:
        executable = redis_executable()
        if executable is None:
            raise RuntimeError(MISSING)
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        # Loopback only, nothing saved to disk: a scratch Redis for the tests.
        options = {"port": str(self.port), "bind": "127.0.0.1", "save": "", "appendonly": "no"}
        self.log = folder / "redis.log"
        command = [executable, "--dir", str(folder), "--logfile", str(self.log)]
        for name, value in options.items():
            command += [f"--{name}", value]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=folder
        )
        self._wait_until_ready()

    def _wait_until_ready(self) -> None:
        # Ready when it answers PING; bounded, and a server that died says why.
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                output = self.log.read_text() if self.log.exists() else ""
                raise RuntimeError(f"redis-server exited at start-up:\n{output}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.02)  # a synchronous fixture, not a coroutine: polling the port
        self.stop()
        raise RuntimeError(f"redis-server did not answer on port {self.port} within 10 s")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class RestartableRedis:
    """A Redis of a test's own, to stop and start again on the same port.

    Started again, it is empty (the tests' Redis keeps nothing on disk), at the same URL. Use it
    as a context manager: it is stopped at the end, whichever run is up.
    """

    def __init__(self, folder: Path) -> None:
        require_redis()
        self._folder = folder
        self._runs = 0
        self.server = self._start(None)
        self.url = self.server.url

    def _start(self, port: int | None) -> RedisServer:
        self._runs += 1
        folder = self._folder / f"run{self._runs}"
        folder.mkdir()
        return RedisServer(folder, port=port)

    def stop(self) -> None:
        self.server.stop()

    def restart(self) -> None:
        """Start it again, empty, on the same port (stop it first)."""
        self.server = self._start(self.server.port)

    def __enter__(self) -> RestartableRedis:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One real Redis for the whole test session; in CI, fails (not skips) when it is missing."""
    require_redis()
    try:
        server = RedisServer(tmp_path_factory.mktemp("redis"))
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The URL of the session's Redis."""
    return redis_server.url


@pytest.fixture
def redis_prefix() -> str:
    """A key prefix of this test's own: tests share one Redis, never its keys."""
    return f"test-{secrets.token_hex(4)}:"


@asynccontextmanager
async def serve_on(
    redis: tuple[str, str] | None, brain: BrainLike = echo, **options: Any
) -> AsyncIterator[ChatServer]:
    """``serve(brain, port=0)`` with the embedded store, or Redis's if ``redis`` (url, prefix)."""
    if redis is None:
        async with serve(brain, port=0, **options) as server:
            yield server
        return
    store, fanout = await open_redis(redis[0], prefix=redis[1])
    try:
        async with serve(brain, port=0, store=store, fanout=fanout, **options) as server:
            yield server
    finally:
        await fanout.close()
        await store.close()


@pytest.fixture(params=["sqlite", "redis"])
def backend(request: pytest.FixtureRequest) -> tuple[str, str] | None:
    """Either backend, for the tests that must hold for both: None, or Redis's (url, prefix)."""
    if request.param == "sqlite":
        return None
    return request.getfixturevalue("redis_url"), request.getfixturevalue("redis_prefix")
