"""The last notebook's launch: in the background, re-runnable, on the next free port if taken."""

from __future__ import annotations

import errno
import ipaddress
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from pathlib import Path

import httpx
import pytest

from chatbot import ChatbotError, PortInUseError, launch, stop_launched
from chatbot.workshop.background import background_servers, start_background, stop_background
from chatbot.workshop.launch import PORT_TRIES, Launched, launched, room_address
from tests.helpers import chat, client
from tests.jsonclient import json_client


@asynccontextmanager
async def launching(port: int = 0, **kwargs: object) -> AsyncIterator[Launched]:
    bot = await launch(port, db=str(kwargs.pop("db", ":memory:")), **kwargs)  # type: ignore[arg-type]
    try:
        yield bot
    finally:
        await stop_launched()


@contextmanager
def squatting(port: int = 0) -> Iterator[socket.socket]:
    """Hold a port the way another program would: a plain socket listening on it."""
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        yield squatter


async def test_launch_serves_the_page_the_health_check_and_both_protocols() -> None:
    async with launching() as bot:
        assert launched() is bot
        async with httpx.AsyncClient(trust_env=False) as http:
            page = await http.get(bot.http_url)
            health = await http.get(bot.http_url + "healthz")
        assert page.status_code == 200 and b"chatbot.v1" in page.content
        assert (health.status_code, health.text) == (200, "ok\n")
        async with client(bot.url) as ws:
            assert "workshop's chatbot" in await chat(ws, "Hello!")  # the assistant, by default
        async with json_client(bot.url) as alice:
            assert alice.welcome["brain"] == "assistant"
            _, end = await alice.say("What is asyncio?")
            assert end["text"].startswith("`asyncio` is Python's standard library")
        assert str(bot).splitlines() == [
            f"Chatbot (assistant) serving on {bot.http_url}",
            f"Chat page: {bot.http_url}",
            "Shared with the room: no (127.0.0.1: this machine only)",
            f"From a terminal: python -m websockets {bot.url}",
        ]
        assert not bot.moved and not bot.shared and bot.room_url is None


async def test_launching_again_replaces_the_server_on_the_same_port() -> None:
    async with launching() as first:
        async with client(first.url) as ws:
            second = await launch(first.port, db=":memory:")
            await ws.wait_closed()
            assert ws.close_code == 1001  # the replaced server said "going away"
        assert second is not first and launched() is second
        assert second.port == first.port and not second.moved
        assert first.store.closed
        async with client(second.url) as ws:
            assert await chat(ws, "Hello!")


async def test_the_launched_chatbot_is_in_the_one_registry_of_the_kernel() -> None:
    async with launching(brain="echo") as bot:
        assert background_servers() == [bot]
        # Stopped by notebook 02's helper, it still closes its store: nothing is left open.
        assert await stop_background() == 1
        assert bot.store.closed and launched() is None and background_servers() == []


async def test_launch_replaces_a_background_server_on_its_port() -> None:
    # A server started in the background on the port (a notebook 02 cell, say) is this kernel's:
    # the launch replaces it instead of moving to the next port.
    other = await start_background(port=0)
    try:
        async with launching(other.port, brain="echo") as bot:
            assert bot.port == other.port and not bot.moved
            assert background_servers() == [bot]
    finally:
        await stop_background()


async def test_a_port_held_by_another_program_moves_to_the_next_free_one() -> None:
    with squatting() as squatter:
        taken = squatter.getsockname()[1]
        async with launching(taken) as bot:
            assert bot.moved and bot.asked_port == taken
            assert taken < bot.port < taken + PORT_TRIES
            assert str(bot).startswith(
                f"Port {taken} is taken by another program: using port {bot.port} instead.\n"
            )
            async with client(bot.url) as ws:
                assert await chat(ws, "Hello!")


async def test_when_every_port_tried_is_taken_the_error_says_which_and_what_to_do() -> None:
    with ExitStack() as stack:
        # PORT_TRIES consecutive ports, all held: find a run of free ones, then hold them.
        for _ in range(50):
            with squatting() as probe:
                base = probe.getsockname()[1]
            if base + PORT_TRIES > 65535:
                continue
            try:
                for port in range(base, base + PORT_TRIES):
                    stack.enter_context(squatting(port))
                break
            except OSError:
                stack.close()
        else:
            pytest.fail(f"found no {PORT_TRIES} consecutive free ports")
        with pytest.raises(PortInUseError) as caught:
            await launch(base, db=":memory:")
    assert caught.value.errno == errno.EADDRINUSE
    assert caught.value.strerror == (
        f"ports {base} to {base + PORT_TRIES - 1} are all in use; "
        "choose another port (0 picks any free one)"
    )
    assert isinstance(caught.value, OSError)  # code written for the plain socket error still works
    assert launched() is None and background_servers() == []


async def test_sessions_survive_a_relaunch_on_the_same_database(tmp_path: Path) -> None:
    db = tmp_path / "workshop.sqlite3"
    async with launching(db=db) as bot:
        async with json_client(bot.url) as alice:
            session = alice.session
            await alice.say("What is asyncio?")
    async with launching(db=db) as bot, json_client(bot.url) as again:
        await again.send({"type": "resume", "session": session})
        history = await again.expect("history", conversation=session)
        assert history["messages"][0]["text"] == "What is asyncio?"
        assert [m["role"] for m in history["messages"]] == ["user", "bot"]


async def test_an_unknown_brain_fails_before_anything_starts_or_stops() -> None:
    with pytest.raises(ChatbotError, match="unknown brain 'nope'"):
        await launch(0, brain="nope", db=":memory:")
    assert launched() is None
    async with launching(brain="echo") as bot:
        with pytest.raises(ChatbotError, match="unknown brain 'nope'"):
            await launch(0, brain="nope", db=":memory:")
        assert launched() is bot  # the room's chatbot is still there
        async with client(bot.url) as ws:
            assert await chat(ws, "still here") == "still here"


async def test_a_streaming_brain_of_your_own() -> None:
    # The notebook's exercise: an async generator is a brain as it is.
    async def countdown(message: str) -> AsyncIterator[str]:
        for n in (3, 2, 1):
            yield f"{n}… "
        yield message.upper() + "!"

    async with launching(brain=countdown) as bot, json_client(bot.url) as alice:
        _, end = await alice.say("lift off")
        assert end["text"] == "3… 2… 1… LIFT OFF!"


async def test_stop_is_idempotent_and_says_whether_something_ran() -> None:
    assert await stop_launched() is False
    bot = await launch(0, brain="echo", db=":memory:")
    async with client(bot.url) as ws:
        assert await chat(ws, "ping") == "ping"
    assert await stop_launched() is True
    await bot.stop()  # a second stop does nothing
    assert launched() is None and bot.store.closed


def test_the_room_address_is_this_machines_address_on_its_network() -> None:
    # What a shared launch prints for the room; nothing here listens beyond loopback.
    address = room_address()
    assert address and " " not in address
    try:
        assert not ipaddress.ip_address(address).is_unspecified
    except ValueError:  # no network: the machine's name
        assert address == socket.gethostname()
