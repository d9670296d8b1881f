"""run_bounded and pauses (chatbot.workshop.exercises): the exercise checkers' time limit, which
holds even against an answer that blocks, and their check for a stream that waits without
holding the loop."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from chatbot.brains.base import Conversation, as_brain
from chatbot.workshop.exercises import pauses, run_bounded

BLOCKING_MESSAGE = (
    "your answer did not finish within 0.2 s: does it block the loop "
    "(time.sleep, requests, urllib)? Use await asyncio.sleep or an async client instead"
)


async def test_a_good_async_answer_returns_its_result() -> None:
    async def answer(name: str) -> str:
        await asyncio.sleep(0)
        return f"Hello, {name}!"

    assert await run_bounded(answer, "Ada", timeout=5) == "Hello, Ada!"


async def test_a_sync_answer_returns_its_result() -> None:
    assert await run_bounded(sorted, [3, 1, 2], timeout=5) == [1, 2, 3]


async def test_the_answer_runs_in_another_thread_with_its_own_loop() -> None:
    async def where() -> tuple[threading.Thread, asyncio.AbstractEventLoop]:
        return threading.current_thread(), asyncio.get_running_loop()

    thread, loop = await run_bounded(where, timeout=5)
    assert thread is not threading.current_thread() and thread.daemon
    assert loop is not asyncio.get_running_loop() and loop.is_closed()


async def test_a_sync_answer_may_start_its_own_loop() -> None:
    # A plain function runs with no loop in its thread, like a script.
    async def main() -> str:
        return "from asyncio.run"

    assert await run_bounded(asyncio.run, main(), timeout=5) == "from asyncio.run"


async def test_an_exception_propagates_unchanged() -> None:
    error = LookupError("no such question")

    async def answer() -> None:
        raise error

    with pytest.raises(LookupError) as caught:
        await run_bounded(answer, timeout=5)
    assert caught.value is error


async def test_a_blocking_answer_raises_timeout_error_saying_what_to_check() -> None:
    with pytest.raises(TimeoutError) as caught:
        await run_bounded(time.sleep, 5, timeout=0.2)
    assert str(caught.value) == BLOCKING_MESSAGE


async def test_the_calling_loop_keeps_running_while_the_answer_blocks() -> None:
    started, release = threading.Event(), threading.Event()

    def blocking_answer() -> str:
        started.set()
        release.wait(30)  # blocks the worker thread until the test lets it go
        return "released"

    bounded = asyncio.create_task(run_bounded(blocking_answer, timeout=30))
    assert await asyncio.to_thread(started.wait, 30)
    other = asyncio.create_task(asyncio.sleep(0.01, result="the loop ran"))
    assert await other == "the loop ran"  # while the answer is still blocked
    assert not bounded.done()
    release.set()
    assert await bounded == "released"


async def test_a_blocking_client_gets_its_answer_from_a_server_in_the_calling_loop() -> None:
    # The case that froze notebook 06's kernel: a blocking request to the kernel's own server.
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(4)
        writer.write(b"pong")
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    async with await asyncio.start_server(answer, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]

        def blocking_client() -> bytes:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
                client.sendall(b"ping")
                return client.recv(4)

        assert await run_bounded(blocking_client, timeout=10) == b"pong"


async def test_tasks_the_answer_leaves_running_are_cancelled() -> None:
    cancelled = threading.Event()

    async def forgotten() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def answer() -> str:
        task = asyncio.create_task(forgotten())
        await asyncio.sleep(0)  # let it start
        return task.get_name()

    await run_bounded(answer, timeout=5)
    assert cancelled.is_set()


async def test_an_answer_that_exits_does_not_reach_the_calling_loop() -> None:
    def answer() -> None:
        raise SystemExit(3)

    with pytest.raises(RuntimeError, match=r"^your answer ended with SystemExit\(3\)$"):
        await run_bounded(answer, timeout=5)


async def test_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="timeout must be a positive number of seconds, got 0"):
        await run_bounded(sorted, [], timeout=0)


async def test_pauses_tells_a_wait_from_a_block_without_reading_a_clock() -> None:
    async def letters(wait: Any) -> AsyncIterator[str]:
        for letter in "abc":
            yield letter
            await wait()

    async def nap() -> None:
        await asyncio.sleep(0.02)

    async def hold() -> None:
        time.sleep(0.02)  # noqa: ASYNC251 (the mistake the check is for)

    async def blink() -> None:
        await asyncio.sleep(0)

    assert await pauses(letters(nap)) == (["a", "b", "c"], [True, True])
    assert await pauses(letters(hold)) == (["a", "b", "c"], [False, False])
    assert await pauses(letters(blink)) == (["a", "b", "c"], [False, False])


async def test_pauses_sees_a_blocking_generator_run_in_a_thread_as_waiting() -> None:
    # as_brain runs a plain generator's steps in a worker thread: time.sleep there holds only
    # that thread, and the loop is free, which is what the check asks.
    def spelled(message: str) -> Iterator[str]:
        for letter in message:
            time.sleep(0.02)
            yield letter

    pieces, waited = await pauses(as_brain(spelled).stream("abc", Conversation()))
    assert (pieces, waited) == (["a", "b", "c"], [True, True])
