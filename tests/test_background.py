"""The notebook helper: background servers that a re-run replaces instead of failing."""

from __future__ import annotations

import errno

import pytest

from chatbot import PortInUseError, background_servers, serve, start_background, stop_background
from chatbot.workshop import background
from tests.helpers import chat, client


async def any_free_port() -> int:
    async with serve(port=0) as probe:
        return probe.port


async def test_starting_again_on_the_same_port_replaces_the_server() -> None:
    port = await any_free_port()
    first = await start_background(port=port)
    try:
        async with client(first.url) as old_client:
            assert await chat(old_client, "one") == "one"
            second = await start_background(port=port)
            assert second is not first and second.port == port
            await old_client.wait_closed()
            assert old_client.close_code == 1001  # the replaced server said "going away"
        async with client(second.url) as ws:
            assert await chat(ws, "two") == "two"
        assert background_servers() == [second]
    finally:
        assert await stop_background() >= 1
    assert background_servers() == []


async def test_port_held_by_another_program_is_a_clear_error() -> None:
    async with serve(port=0) as other:
        with pytest.raises(PortInUseError) as caught:
            await start_background(port=other.port)
    assert caught.value.errno == errno.EADDRINUSE
    assert str(caught.value) == (
        f"[Errno {errno.EADDRINUSE}] port {other.port} on 127.0.0.1 is in use by another "
        "program, not by a server started with start_background(); stop that program, or "
        "choose another port (port=0 picks any free one)"
    )
    assert isinstance(caught.value, OSError)
    assert background_servers() == []


async def test_stop_one_server_leaves_the_others_running() -> None:
    a = await start_background(port=0)
    b = await start_background(port=0)
    try:
        assert await stop_background(a) == 1
        assert background_servers() == [b]
        async with client(b.url) as ws:
            assert await chat(ws, "b lives") == "b lives"
    finally:
        await stop_background()


async def test_free_port_skips_another_programs_port_and_keeps_its_own() -> None:
    # A JupyterHub: another learner's server holds the port asked for; ours takes the next one,
    # and asking again (the start cell run again) gives ours back, for start_background to replace.
    async with serve(port=0) as other:
        ours = background.free_port(other.port)
        assert ours != other.port
        bot = await start_background(port=ours)
        try:
            assert background.free_port(other.port) == ours
            again = await start_background(port=background.free_port(other.port))
            assert again is not bot and again.port == ours
            async with client(again.url) as ws:
                assert await chat(ws, "mine") == "mine"
        finally:
            await stop_background()
        with pytest.raises(PortInUseError, match=rf"^\[Errno \d+\] ports {other.port} to "):
            background.free_port(other.port, tries=1)
