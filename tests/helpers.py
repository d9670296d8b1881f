"""Helpers for the tests: real clients and real server processes on loopback."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from websockets.asyncio.client import ClientConnection, connect

from chatbot.brains.base import Brain, Conversation

ROOT = Path(__file__).resolve().parent.parent
# The browser tests drive Debian's Chromium (or CHATBOT_CHROMIUM) with Playwright, headless.
CHROMIUM = os.environ.get("CHATBOT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
STARTUP_TIMEOUT = 30.0


def client(url: str) -> connect:
    """Connect to a test server directly, whatever proxy the environment names."""
    return connect(url, proxy=None, open_timeout=STARTUP_TIMEOUT)


async def chat(ws: ClientConnection, text: str) -> str:
    """Send one message and return the text reply."""
    await ws.send(text)
    reply = await ws.recv()
    assert isinstance(reply, str), f"expected a text reply, got {reply!r}"
    return reply


class ServerProcess:
    """A ``python -m chatbot`` child process, with the address it printed."""

    def __init__(self, process: asyncio.subprocess.Process, first_line: str) -> None:
        self.process = process
        self.first_line = first_line
        self.http_url = first_line.rsplit(" ", 1)[-1]
        self.url = self.http_url.replace("http://", "ws://", 1)


def without_modules(*names: str) -> list[str]:
    """The ``python`` arguments that run ``chatbot.cli.main`` as if ``names`` were not installed.

    ``sys.modules[name] = None`` makes ``import name`` raise ImportError, as on a machine without
    it: how the tests check that uvloop and orjson stay optional.
    """
    hide = "; ".join(f"sys.modules[{name!r}] = None" for name in names)
    return ["-c", f"import sys; {hide}; from chatbot.cli import main; sys.exit(main())"]


async def run_chatbot(*args: str, python: list[str] | None = None) -> tuple[int, str, str]:
    """Run ``python -m chatbot ARGS`` until it exits; return its status, stdout and stderr.

    For the command lines that must fail at once; ``python`` replaces ``-m chatbot`` (see
    :func:`without_modules`). Bounded by STARTUP_TIMEOUT.
    """
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *(python or ["-m", "chatbot"]),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    try:
        async with asyncio.timeout(STARTUP_TIMEOUT):
            out, err = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@asynccontextmanager
async def chatbot_process(
    *args: str, python: list[str] | None = None, env: dict[str, str] | None = None
) -> AsyncIterator[ServerProcess]:
    """Start ``python -m chatbot --port 0 ARGS``; wait for its address; kill it if still alive.

    ``python`` replaces ``-m chatbot`` (see :func:`without_modules`); ``env`` adds variables.
    """
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    if "--db" not in args:
        args = (*args, "--db", ":memory:")  # leave no database file behind
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *(python or ["-m", "chatbot"]),
        "--port",
        "0",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
        env=env,
    )
    try:
        assert process.stdout is not None
        async with asyncio.timeout(STARTUP_TIMEOUT):
            first_line = (await process.stdout.readline()).decode().strip()
        if not first_line.startswith("Chatbot"):
            assert process.stderr is not None
            raise AssertionError(
                f"python -m chatbot did not start: {first_line!r}\n"
                f"{(await process.stderr.read()).decode()}"
            )
        yield ServerProcess(process, first_line)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def pid_reply(message: str) -> str:
    """A brain for offload tests: says which process computed the reply."""
    return f"{os.getpid()} {message}"


class TurnCounter(Brain):
    """A brain that replies with how many turns of the conversation it was handed."""

    name = "turn-counter"

    def __init__(self, history: int | None) -> None:
        self.history = history

    async def stream(self, message: str, conversation: Conversation) -> AsyncIterator[str]:
        yield str(len(conversation.turns))


def count_turns(message: str, conversation: Conversation) -> str:
    """A brain for scale-out tests: says how many turns of the conversation it was shown."""
    return f"turn {len(conversation.turns) // 2 + 1}"


async def slow_words(message: str) -> AsyncIterator[str]:
    """A brain that streams a reply slowly: ten chunks, 50 ms apart (time to kill a server)."""
    for n in range(10):
        await asyncio.sleep(0.05)
        yield f"{message} {n} "


async def long_count(message: str) -> AsyncIterator[str]:
    """A brain that counts to 500, 20 ms a number: a reply that only Stop ends in time."""
    for n in range(1, 501):
        yield f"{n} "
        await asyncio.sleep(0.02)
