"""Notebook 02's server on its own: plain text, and the seams later notebooks plug into."""

from __future__ import annotations

import asyncio
import logging
from http import HTTPStatus

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import InvalidStatus
from websockets.http11 import Request, Response
from websockets.typing import Origin, Subprotocol

from chatbot.server.base import SORRY, TEXT_ONLY, ChatServer, IdleTimeout, echo, serve
from tests.helpers import chat, client


async def test_a_plain_function_and_a_coroutine_are_both_brains() -> None:
    async def later(message: str) -> str:
        await asyncio.sleep(0)
        return message[::-1]

    async with serve(echo, port=0) as plain, serve(later, port=0) as awaited:
        assert isinstance(plain, ChatServer) and type(plain) is ChatServer
        async with client(plain.url) as a, client(awaited.url) as b:
            assert await chat(a, "hello") == "hello"
            assert await chat(b, "hello") == "olleh"


async def test_a_failing_brain_gets_an_apology_and_its_traceback_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def fragile(message: str) -> str:
        return f"{100 // len(message.strip())}% sure"

    with caplog.at_level(logging.ERROR, logger="chatbot.server.base"):
        async with serve(fragile, port=0) as server, client(server.url) as ws:
            assert await chat(ws, "   ") == SORRY
            assert await chat(ws, "hi") == "50% sure"
            await ws.send(b"\x00")
            assert await ws.recv() == TEXT_ONLY
            assert await chat(ws, "hello") == "20% sure"
    [record] = [r for r in caplog.records if r.name == "chatbot.server.base"]
    assert isinstance(record.exc_info[1], ZeroDivisionError)
    assert [event.kind for event in server.log] == [
        "open", "message", "error", "reply", "message", "reply", "error", "message", "reply",
        "close",
    ]  # fmt: skip


async def test_a_brain_that_returns_no_text_is_a_failure_too() -> None:
    def silent(message: str) -> None:
        return None

    async with serve(silent, port=0) as server, client(server.url) as ws:  # type: ignore[arg-type]
        assert await chat(ws, "hello") == SORRY


async def test_http_hooks_answer_in_order_and_none_lets_the_handshake_go_on() -> None:
    seen: list[str] = []

    def first(connection: ServerConnection, request: Request) -> Response | None:
        seen.append(f"first {request.path}")
        if request.path == "/teapot":
            return connection.respond(HTTPStatus.IM_A_TEAPOT, "short and stout\n")
        return None

    async def second(connection: ServerConnection, request: Request) -> Response | None:
        seen.append(f"second {request.path}")
        await asyncio.sleep(0)  # a hook may wait (notebook 06's /readyz asks the store)
        if request.headers.get("Origin") == "https://evil.example":
            return connection.respond(HTTPStatus.FORBIDDEN, "no\n")
        return None

    async with serve(port=0, http=[first, second]) as server:
        with pytest.raises(InvalidStatus) as refused:
            async with client(server.url.rstrip("/") + "/teapot"):
                pass
        assert refused.value.response.status_code == HTTPStatus.IM_A_TEAPOT
        with pytest.raises(InvalidStatus) as refused:
            async with connect(server.url, proxy=None, origin=Origin("https://evil.example")):
                pass
        assert refused.value.response.status_code == HTTPStatus.FORBIDDEN
        async with client(server.url) as ws:
            assert await chat(ws, "through") == "through"
    assert seen == ["first /teapot", "first /", "second /", "first /", "second /"]


async def test_a_subprotocol_handler_takes_the_clients_that_ask_for_it() -> None:
    async def shouting(connection: ServerConnection, number: int) -> None:
        async for message in connection:
            await connection.send(f"{number}: {str(message).upper()}")

    async with serve(port=0, handlers={"shout": shouting}) as server:
        async with client(server.url) as plain:
            assert plain.subprotocol is None
            assert await chat(plain, "quiet") == "quiet"
        offered = [Subprotocol("other"), Subprotocol("shout")]
        async with connect(server.url, proxy=None, subprotocols=offered) as loud:
            assert loud.subprotocol == "shout"
            assert await chat(loud, "hello") == "2: HELLO"
    assert [str(event) for event in server.log if event.kind == "open"] == [
        "client 1   open     /",
        "client 2   open     / (shout)",
    ]


async def test_the_key_none_replaces_the_plain_text_mode() -> None:
    async def polite(connection: ServerConnection, number: int) -> None:
        async for message in connection:
            await connection.send(f"Thank you for {message!r}.")

    async with serve(port=0, handlers={None: polite}) as server, client(server.url) as ws:
        assert await chat(ws, "hi") == "Thank you for 'hi'."


async def test_idle_timeout_counts_only_the_waits_and_keeps_one_timer_for_many_messages() -> None:
    loop = asyncio.get_running_loop()
    with pytest.raises(TimeoutError):
        async with IdleTimeout(0.05) as idle:
            idle.waiting()
            timer = idle._timer
            for _ in range(1000):  # a message, answered, then the next wait: no new timer
                idle.busy()
                idle.waiting()
                assert idle._timer is timer
            idle.busy()
            answering = loop.create_future()
            loop.call_later(0.2, answering.set_result, None)  # answering, four limits long
            await answering
            idle.waiting()
            await asyncio.Event().wait()  # then silence: cut
    assert idle.expired()


async def test_idle_timeout_none_never_expires_and_another_timeout_error_is_not_its() -> None:
    with pytest.raises(TimeoutError):
        async with IdleTimeout(None) as idle:
            idle.waiting()
            async with asyncio.timeout(0.05):  # a brain's own deadline, say
                await asyncio.Event().wait()
    assert not idle.expired() and idle._timer is None


async def test_a_silent_client_is_closed_after_the_idle_timeout_and_a_slow_reply_is_not() -> None:
    release = asyncio.Event()

    async def slow(message: str) -> str:
        await release.wait()  # longer than the idle timeout: answering is not idling
        return message

    async with serve(slow, port=0, idle_timeout=0.2) as server, client(server.url) as ws:
        await ws.send("take your time")
        await server.log.wait_for("message")
        # The idle timeout is disarmed while the brain works: wait for it to have passed twice
        # over, with no clock, by letting a second connection be closed for idling meanwhile.
        async with client(server.url) as other:
            await other.wait_closed()
            assert (other.close_code, other.close_reason) == (1000, "idle timeout")
        release.set()
        assert await ws.recv() == "take your time"
