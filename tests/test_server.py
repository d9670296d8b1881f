"""The server core against real clients on 127.0.0.1, port 0."""

from __future__ import annotations

import asyncio
import logging
import urllib.request

import pytest
from websockets.exceptions import ConnectionClosedOK

from chatbot import ChatServer, EventLog, echo, serve
from chatbot.brains.base import SORRY
from chatbot.server.base import TEXT_ONLY
from tests.helpers import chat, client


async def test_echo_round_trip() -> None:
    async with serve(echo, port=0) as server, client(server.url) as ws:
        assert await chat(ws, "Hello") == "Hello"
        assert await chat(ws, "") == ""
        assert await chat(ws, "ünïcödé ✓") == "ünïcödé ✓"


async def test_listens_on_loopback_by_default_and_reports_the_chosen_port() -> None:
    async with serve(port=0) as server:
        assert server.host == "127.0.0.1"
        assert server.port > 0
        assert server.url == f"ws://127.0.0.1:{server.port}/"
        assert server.http_url == f"http://127.0.0.1:{server.port}/"
        assert repr(server) == f"<Chatbot ws://127.0.0.1:{server.port}/>"


async def test_fifty_concurrent_clients_each_get_their_own_replies() -> None:
    async def brain(message: str) -> str:
        await asyncio.sleep(0.01)  # let the clients' conversations interleave
        return f"re: {message}"

    async def conversation(server: ChatServer, n: int) -> list[str]:
        async with client(server.url) as ws:
            return [await chat(ws, f"client {n} message {i}") for i in range(3)]

    async with serve(brain, port=0) as server:
        results = await asyncio.gather(*(conversation(server, n) for n in range(50)))
    assert results == [[f"re: client {n} message {i}" for i in range(3)] for n in range(50)]


async def test_coroutine_brain_is_awaited() -> None:
    async def polite(message: str) -> str:
        await asyncio.sleep(0)
        return f"You said {message!r}."

    async with serve(polite, port=0) as server, client(server.url) as ws:
        assert await chat(ws, "hi") == "You said 'hi'."


async def test_failing_brain_gets_an_apology_and_the_connection_stays(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def fragile(message: str) -> str:
        if message == "boom":
            raise ValueError("internal detail the user must not see")
        return message

    with caplog.at_level(logging.ERROR, logger="chatbot.server.app"):
        async with serve(fragile, port=0) as server, client(server.url) as ws:
            assert await chat(ws, "boom") == SORRY
            assert await chat(ws, "still there?") == "still there?"
    assert SORRY == "Sorry, something went wrong on my side. Please try again."
    [record] = [r for r in caplog.records if r.name == "chatbot.server.app"]
    assert record.exc_info is not None and isinstance(record.exc_info[1], ValueError)
    assert "failed on client 1's message" in record.getMessage()


async def test_binary_frame_gets_a_text_error_and_the_connection_stays() -> None:
    async with serve(port=0) as server, client(server.url) as ws:
        await ws.send(b"\x00\x01")
        assert await ws.recv() == TEXT_ONLY == "Sorry, I only understand text messages."
        assert await chat(ws, "text works") == "text works"
    assert [e.kind for e in server.log] == ["open", "error", "message", "reply", "close"]


async def test_shutdown_closes_every_connection_with_1001() -> None:
    server = await serve(port=0)
    connections = [await client(server.url) for _ in range(3)]
    for ws in connections:
        assert await chat(ws, "before") == "before"
    server.close()
    await server.wait_closed()
    for ws in connections:
        await ws.wait_closed()
        assert ws.close_code == 1001
        with pytest.raises(ConnectionClosedOK):
            await ws.send("after")
    assert server.log.total == 3 * 4  # open, message, reply, close for each


async def test_event_log_records_a_conversation_in_order() -> None:
    log = EventLog()
    async with serve(port=0, log=log) as server:
        async with client(server.url + "room?x=1") as ws:
            await chat(ws, "hi")
        await log.wait_for("close", client=1)
    assert [str(event) for event in log] == [
        "client 1   open     /room",
        "client 1   message  'hi'",
        "client 1   reply    'hi'",
        "client 1   close    1000 (OK)",
    ]


async def test_long_messages_are_clipped_in_the_log_but_not_in_the_reply() -> None:
    text = "x" * 500
    async with serve(port=0) as server:
        async with client(server.url) as ws:
            assert await chat(ws, text) == text
        event = await server.log.wait_for("message")
    assert event.detail == repr("x" * 59 + "…")


async def test_healthz_answers_plain_http_on_the_same_port() -> None:
    async with serve(port=0) as server:

        def get() -> tuple[int, str, str]:
            direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no proxy
            with direct.open(f"{server.http_url}healthz?probe=1", timeout=10) as r:
                return r.status, r.headers["Content-Type"], r.read().decode()

        status, content_type, body = await asyncio.to_thread(get)
    assert (status, body) == (200, "ok\n")
    assert content_type.startswith("text/plain")


async def test_server_that_was_not_started_says_how_to_start_it() -> None:
    with pytest.raises(
        RuntimeError, match=r"^the server is not started yet; use `await serve\(...\)`$"
    ):
        ChatServer().port  # noqa: B018


async def test_address_in_use_raises_oserror_with_eaddrinuse() -> None:
    import errno

    async with serve(port=0) as first:
        with pytest.raises(OSError) as caught:
            await serve(port=first.port)
    assert caught.value.errno == errno.EADDRINUSE
