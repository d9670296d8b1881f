"""Issue 14, the protocol and the hub: attacks that stay within the limits, against a real server.

Each test reproduces a defect found by attacking the finished server (issue 14), and checks the
fix. Work is measured without a clock: in lines of Python run (a CPU budget that does not depend
on how busy the machine is), in frames, or in bytes.
"""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect

from chatbot import serve
from chatbot.brains.base import load_brain
from chatbot.brains.eliza import MAX_MEMORIES, MAX_TEXT
from chatbot.server.hub import Hub
from chatbot.server.limits import Limits
from chatbot.server.protocol import ProtocolError, encode, parse
from chatbot.storage.sqlite import Store
from tests.jsonclient import json_client

FRAME_BYTES = 64 * 1024
# Frames within the frame limit that a nesting check might find expensive.
BRACKET_FRAMES = {
    "65,000 [": "[" * 65_000,
    "32,500 []": "[]" * 32_500,
    "1,000 arrays 32 deep": ("[" * 32 + "]" * 32) * 1_000,
    "objects 10,000 deep": '{"a":' * 10_000 + "1" + "}" * 10_000,
    "a staircase [[]": "[[]" * 16_000 + "]" * 16_000,
    "[ inside a string": '{"type": "message", "text": "' + "[" * 64_000 + '"}',
    "16,000 strings": '{"type": "message", "text": "hi", "x": [' + '"[",' * 16_000 + "1]}",
}
PLAIN = '{"type": "message", "text": "' + "a" * 64_000 + '"}'


def python_lines(function: Callable[..., Any], *args: Any, **kwargs: Any) -> int:
    """How many lines of Python run during ``function(*args)``: work, measured without a clock."""
    count = 0

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        nonlocal count
        if event == "line":
            count += 1
        return tracer

    previous = sys.gettrace()
    sys.settrace(tracer)
    try:
        function(*args, **kwargs)
    except ProtocolError:
        pass
    finally:
        sys.settrace(previous)
    return count


@pytest.mark.parametrize("frame", list(BRACKET_FRAMES.values()), ids=list(BRACKET_FRAMES))
def test_nesting_check_costs_no_more_python_than_a_plain_frame(frame: str) -> None:
    # Defect 2: a 65,000-character "[[[[..." frame ran a Python loop once per character (15 ms,
    # against 0.18 ms for a plain 64 KB frame); twenty connections doing it locked everyone out.
    assert len(frame.encode()) <= FRAME_BYTES
    plain = python_lines(parse, PLAIN, max_chars=FRAME_BYTES)
    assert python_lines(parse, frame, max_chars=FRAME_BYTES) <= plain + 40


@pytest.mark.parametrize(
    ("frame", "deep"),
    [
        ("[" * 33 + "]" * 33, True),
        ("[" * 32 + "]" * 32, False),
        ('{"a":' * 33 + "1" + "}" * 33, True),
        ('{"a":' * 32 + "1" + "}" * 32, False),
        ("[" * 16 + "{" + '"k":' + "[" * 16 + "]" * 16 + "}" + "]" * 16, True),
        ('["' + "[" * 40 + '"]' + "," + '"\\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["', False),
        ('["\\\\", ' + "[" * 20 + "]" * 20 + "]", False),
    ],
)
def test_nesting_is_counted_exactly_outside_strings(frame: str, deep: bool) -> None:
    try:
        parse(frame, max_chars=100)
    except ProtocolError as error:
        code, message = error.code, error.message
    else:
        code, message = "", ""
    assert ("32 deep" in message) == deep, (code, message)


async def test_bracket_frames_are_refused_and_the_connection_stays() -> None:
    limits = Limits(messages_per_second=1000.0, burst=1000)
    async with serve(port=0, limits=limits) as server, json_client(server.url) as ws:
        for name, frame in BRACKET_FRAMES.items():
            await ws.send_frame(frame)
            if name == "16,000 strings":  # a chat message with an odd extra field: answered
                ack = await ws.expect("ack")
                await ws.reply(ack["seq"])
            elif name == "[ inside a string":  # a chat message, over 4,000 characters
                await ws.expect_error("text_too_long")
            else:
                await ws.expect_error("invalid_json")
        ack, end = await ws.say("still here")
        assert end["text"] == "still here"


# Defect 7: impersonation. Names are labels, not identities: they are normalised, refused when
# they hide or reorder characters, unique in a room, and never one the page or the bot uses; the
# page knows its own messages by a ``mine`` field the server sets by session, not by name.

ROOM = {"type": "join", "room": "lobby"}


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("You", "name_reserved"),
        ("yOU", "name_reserved"),
        ("assistant", "name_reserved"),
        ("System", "name_reserved"),
        ("echo", "name_reserved"),  # the brain's name
        ("guest-7", "name_reserved"),  # the server's names for guests
        ("Ada\u200b", "bad_name"),  # zero width space
        ("\u200b\u200b\u200b", "bad_name"),
        ("\u202eAda", "bad_name"),  # right-to-left override
        ("Ada\u2066", "bad_name"),  # left-to-right isolate
        ("\u3164", "bad_name"),  # Hangul filler: a letter that shows nothing
        ("\u2800\u2800", "bad_name"),  # Braille blank
        ("\u0301", "bad_name"),  # a combining accent on nothing
    ],
)
async def test_names_that_hide_or_impersonate_are_refused(name: str, code: str) -> None:
    async with serve(port=0) as server, json_client(server.url) as ws:
        await ws.send(ROOM | {"name": name})
        error = await ws.expect_error(code)
        assert "name" in error["message"]
        # Still out of the room, still chatting in private.
        ack, _ = await ws.say("still here")
        assert ack["conversation"] == ws.session


async def test_a_refused_name_names_the_character_as_it_was_typed() -> None:
    # NFKC turns HANGUL FILLER (U+3164) into HANGUL JUNGSEONG FILLER (U+1160): the error named
    # the second, a character nobody typed.
    async with serve(port=0) as server, json_client(server.url) as ws:
        await ws.send(ROOM | {"name": "Ada\u3164"})
        error = await ws.expect_error("bad_name")
        assert "got HANGUL FILLER (U+3164)." in error["message"]


async def test_names_are_normalised() -> None:
    async with serve(port=0) as server, json_client(server.url) as ws:
        await ws.send(ROOM | {"name": "  \uff21\uff44\uff41   Lovelace "})  # fullwidth "Ada"
        await ws.expect("history", room="lobby")
        presence = await ws.expect("presence", event="join")
        assert presence["name"] == "Ada Lovelace"


async def test_a_name_in_use_in_the_room_is_refused_whatever_its_case() -> None:
    async with (
        serve(port=0) as server,
        json_client(server.url) as ada,
        json_client(server.url) as other,
    ):
        await ada.send(ROOM | {"name": "Ada"})
        await ada.expect("history")
        await ada.expect("presence", name="Ada")
        await other.send(ROOM | {"name": "ADA"})
        error = await other.expect_error("name_taken")
        assert "Ada" in error["message"] or "ADA" in error["message"]
        # Elsewhere, or once Ada left, the name is free.
        await other.send({"type": "join", "room": "kitchen", "name": "ada"})
        await other.expect("history", room="kitchen")
        await other.expect("presence", name="ada")
        await ada.send({"type": "leave"})
        await ada.expect("presence", event="leave")
        await other.send(ROOM | {"name": "Ada"})
        await other.expect("presence", room="kitchen", event="leave", mine=True)
        await other.expect("history", room="lobby")
        await other.expect("presence", name="Ada")


async def test_the_server_marks_your_own_messages_by_session_not_by_name() -> None:
    async with (
        serve(port=0) as server,
        json_client(server.url) as tab1,
        json_client(server.url) as tab2,
        json_client(server.url) as bob,
    ):
        await tab1.send(ROOM | {"name": "Ada"})
        await tab1.expect("history")
        assert (await tab1.expect("presence", name="Ada")).get("mine") is True
        # The same session in a second tab: resumed, then joined under the same name (allowed).
        await tab2.send({"type": "resume", "session": tab1.session})
        await tab2.expect("history", room=None)
        await tab2.expect("history", room="lobby")
        assert (await tab2.expect("presence", name="Ada")).get("mine") is True
        assert (await tab1.expect("presence", name="Ada")).get("mine") is True
        await bob.send(ROOM | {"name": "Bob"})
        history = await bob.expect("history")
        assert (await bob.expect("presence", name="Bob")).get("mine") is True
        for ws in (tab1, tab2):
            assert "mine" not in (await ws.expect("presence", name="Bob"))
        await tab1.send({"type": "message", "text": "hello from tab 1"})
        ack = await tab1.expect("ack")
        seen = {
            "tab2": await tab2.expect("message", author="Ada"),
            "bob": await bob.expect("message", author="Ada"),
        }
        assert seen["tab2"].get("mine") is True and "mine" not in seen["bob"]
        # History says the same, per viewer: tab 2 and Bob join again and get it.
        for ws in (tab1, tab2, bob):
            await ws.reply(ack["seq"])
        await bob.send(ROOM)
        await bob.expect("presence", event="leave", mine=True)
        history = await bob.expect("history")
        await bob.expect("presence", event="join", mine=True)
        for ws in (tab1, tab2):
            await ws.expect("presence", event="leave", name="Bob")
            await ws.expect("presence", event="join", name="Bob")
        mine = {m["text"]: m.get("mine") for m in history["messages"] if m["role"] == "user"}
        assert mine == {"hello from tab 1": None}
        await tab2.send(ROOM)
        await tab2.expect("presence", event="leave", mine=True)
        history = await tab2.expect("history")
        mine = {m["text"]: m.get("mine") for m in history["messages"] if m["role"] == "user"}
        assert mine == {"hello from tab 1": True}


@pytest.mark.browser
async def test_the_page_shows_someone_with_your_name_as_someone_else() -> None:
    # Before: the page decided "You" by comparing names, so Mallory, calling herself Ada first,
    # had her messages shown as Ada's own on Ada's page (history and live).
    from tests.test_browser import chromium, expect, new_page, open_chat

    async with serve(port=0) as server, json_client(server.url) as mallory:
        await mallory.send(ROOM | {"name": "Ada"})
        await mallory.expect("history")
        await mallory.expect("presence", name="Ada")
        await mallory.say("I am Ada")
        async with chromium() as browser, new_page(browser) as page:
            await open_chat(page, server.http_url + "?room=lobby&name=Ada")
            await expect(page.locator("#notice")).to_contain_text("already called 'Ada'")
            await expect(page.locator("#where")).to_have_text(re.compile(r"Room lobby · guest-"))
            joined = await mallory.expect("presence", event="join")
            assert joined["name"].startswith("guest-") and "mine" not in joined
            await mallory.send({"type": "message", "text": "trust me"})
            others = page.locator("#log .msg.other")
            await expect(others.locator(".text")).to_have_text(["I am Ada", "trust me"])
            await expect(others.locator(".who")).to_have_text(["Ada", "Ada"])
            await expect(page.locator("#log .msg.me")).to_have_count(0)


# Defect 3: amplification through history. History was capped at 200 messages, not bytes (one
# `history` frame was 3.2 MB, and a default websockets client, max_size 1 MiB, could not resume at
# all: 1009); the outbox counted frames (256), not bytes.

HISTORY_TEXT = "é" * 4000  # the longest message allowed: 8,000 bytes in UTF-8


async def big_room(path: Path, count: int = 200, text: str = HISTORY_TEXT) -> Store:
    store = await Store.open(path)
    for _ in range(count):
        await store.append("room:lobby", "user", "Ada", text)
    return store


# The longest messages in their costliest shapes in a frame: two bytes a character in UTF-8, and
# two in JSON (a quote, a backslash, a line break each travel escaped: the budget once counted
# only UTF-8, and 200 messages of quotes made one page of 250,524 bytes).
COSTLY_TEXTS = [HISTORY_TEXT, '"' * 4000, 'a\\"\n' * 1000]


@pytest.mark.parametrize("text", COSTLY_TEXTS, ids=["utf-8", "quotes", "escapes"])
async def test_history_comes_in_pages_of_bounded_bytes(tmp_path: Path, text: str) -> None:
    async with (
        await big_room(tmp_path / "chat.sqlite3", text=text) as store,
        serve(port=0, store=store) as server,
        json_client(server.url) as ws,  # websockets' default max_size: 1 MiB
    ):
        await ws.send(ROOM)
        frames: list[str] = []
        while True:
            frame = await ws.connection.recv()
            assert isinstance(frame, str)
            frames.append(frame)
            page = json.loads(frame)
            assert page["type"] == "history", page
            if len(frames) == 1:
                await ws.expect("presence", event="join")
            if not page.get("more"):
                break
            await ws.send({"type": "history", "before": page["messages"][0]["seq"]})
            assert len(frames) < 200

        assert all(len(frame.encode()) <= Limits().history_page_bytes for frame in frames)
        seqs = [m["seq"] for frame in reversed(frames) for m in json.loads(frame)["messages"]]
        assert seqs == list(range(1, 201))
        assert all(m["text"] == text for frame in frames for m in json.loads(frame)["messages"])


async def test_history_pages_reach_the_first_message_of_a_long_room(tmp_path: Path) -> None:
    # A page holds at most 200 messages; asking for the page before the oldest one shown goes
    # on to the room's first message, however long the room is (it stopped at the last 200).
    async with (
        await big_room(tmp_path / "chat.sqlite3", count=450, text="hello") as store,
        serve(port=0, store=store) as server,
        json_client(server.url) as ws,
    ):
        await ws.send(ROOM)
        pages = [await ws.expect("history", more=True)]
        await ws.expect("presence", event="join")
        while pages[-1].get("more"):
            await ws.send({"type": "history", "before": pages[-1]["messages"][0]["seq"]})
            pages.append(await ws.expect("history"))
            assert len(pages) <= 3
        assert [len(page["messages"]) for page in pages] == [200, 200, 50]
        seqs = [m["seq"] for page in reversed(pages) for m in page["messages"]]
        assert seqs == list(range(1, 451))


@pytest.mark.parametrize(
    "text", ["", "plain", "é€😀", '"\\', "\n\r\t\b\f", "\x00\x01\x1f\x7f", '\u2028 a"b']
)
def test_the_history_budget_counts_a_text_as_its_frame_does(text: str) -> None:
    # As the frames are written (orjson when installed): what the text adds to a message.
    empty = len(encode("history", text="").encode())
    assert Hub._json_bytes(text) == len(encode("history", text=text).encode()) - empty


async def test_a_client_that_asks_for_history_and_never_reads_is_dropped_by_bytes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Before: 100 resumes of a 1.6 MB history were 100 frames, under the 256-frame limit, so a
    # client that never read held 160 MB of the server's memory (issue 14: 8 clients, +640 MiB).
    # The rate limit is lifted so that the resumes outgrow the kernel's socket buffers.
    limits = Limits(messages_per_second=1000.0, burst=1000)
    from tests.test_hub import masked_text_frame, stuck_client

    async with (
        await big_room(tmp_path / "chat.sqlite3") as store,
        serve(port=0, store=store, limits=limits, close_timeout=1) as server,
    ):
        async with json_client(server.url, max_size=None) as owner:  # joins, then goes
            await owner.send(ROOM)
            await owner.expect("history")
        await server.log.wait_for("close", client=1)
        stuck = await stuck_client(server.port)
        try:
            resume = json.dumps({"type": "resume", "session": owner.session})
            for _ in range(100):
                stuck.write(masked_text_frame(resume))
            closed = await server.log.wait_for("close", client=2, timeout=30)
            assert closed.detail.startswith(("1008", "1006"))
        finally:
            stuck.transport.abort()
    SEND_QUEUE_BYTES = Limits().send_queue_bytes

    dropped = [m for m in caplog.messages if m.startswith("disconnecting a client")]
    assert dropped and "bytes" in dropped[0], dropped
    held = int(re.findall(r"([0-9]+) bytes", dropped[0])[0])
    assert SEND_QUEUE_BYTES < held <= 2 * SEND_QUEUE_BYTES  # the limit, and one frame more


@pytest.mark.browser
async def test_the_page_shows_earlier_pages_of_history_on_request(tmp_path: Path) -> None:
    from tests.test_browser import chromium, expect, new_page, open_chat

    async with (
        await big_room(tmp_path / "chat.sqlite3") as store,
        serve(port=0, store=store) as server,
        chromium() as browser,
        new_page(browser) as page,
    ):
        await open_chat(page, server.http_url + "?room=lobby")
        shown = page.locator("#log .msg.other")
        await expect(page.locator("#earlier")).to_be_visible()
        first_page = await shown.count()
        assert 0 < first_page < 200
        while await page.locator("#earlier").is_visible():
            count = await shown.count()
            await page.locator("#earlier").click()
            await expect(shown).not_to_have_count(count)
        await expect(shown).to_have_count(200)


@pytest.mark.parametrize("before", [None, "41", 0, -3, 1.5, True, [41], 2**63, 2**70])
async def test_a_history_request_without_a_good_before_is_refused(before: Any) -> None:
    async with serve(port=0) as server, json_client(server.url) as ws:
        frame = {"type": "history", "id": "h1"} | ({} if before is None else {"before": before})
        await ws.send(frame)
        error = await ws.expect_error("wrong_type", id="h1")
        assert error["message"].startswith('"before" must be a whole number from 1')
        await ws.send({"type": "history", "before": 5, "id": "h2"})
        page = await ws.expect("history", conversation=ws.session, before=5)
        assert page["messages"] == [] and "more" not in page


# Defect 1: ping flood. websockets answers each ping with a pong as it reads it, and writes the
# pong whatever already waits to be sent: a client that sends pings and never reads grew the
# server by 480 MiB and more, and the keepalive never dropped it.


@pytest.mark.parametrize("subprotocol", ["chatbot.v1", None], ids=["json", "plain-text"])
async def test_a_client_that_sends_pings_and_never_reads_is_dropped(
    caplog: pytest.LogCaptureFixture, subprotocol: str | None
) -> None:
    from websockets.frames import Frame, Opcode

    from tests.test_hub import stuck_client

    ping = Frame(Opcode.PING, b"p" * 125).serialize(mask=True, extensions=[])
    async with serve(port=0) as server:
        stuck = await stuck_client(server.port, subprotocol)
        try:
            # Up to 64 MB of pings, as fast as the server reads them: more pongs than the
            # kernel's socket buffers hold, so the rest waits in the server's memory.
            with contextlib.suppress(ConnectionError):
                for _ in range(512):
                    if any(e.kind == "close" for e in server.log.tail(100)):
                        break
                    stuck.write(ping * 1000)
                    await stuck.drain()
            closed = await server.log.wait_for("close", client=1, timeout=30)
            assert closed.detail.startswith("1006")
        finally:
            stuck.transport.abort()
    assert any("unsent" in message for message in caplog.messages), caplog.messages


def session_rows(path: Path) -> int:
    """How many sessions the SQLite file at ``path`` holds, read by a connection of our own."""
    with contextlib.closing(sqlite3.connect(path)) as connection:
        return int(connection.execute("SELECT COUNT(*) FROM sessions").fetchone()[0])


async def test_handshakes_that_never_use_their_session_write_nothing(tmp_path: Path) -> None:
    # Defect 8: every handshake wrote a session row, used or not (4,640 rows in 5 s from one
    # client; every page reload left one behind). A session is now written when first used.
    path = tmp_path / "chat.sqlite3"
    async with await Store.open(path) as store, serve(port=0, store=store) as server:
        for _ in range(200):
            async with json_client(server.url) as silent:
                assert len(silent.session) == 22
        assert session_rows(path) == 0

        async with json_client(server.url) as ada:
            await ada.say("hello", id="m1")
            assert session_rows(path) == 1
            used = ada.session
        async with json_client(server.url) as again:  # a used session resumes
            await again.send({"type": "resume", "session": used, "id": "r1"})
            history = await again.expect("history")
            assert [m["text"] for m in history["messages"]][:1] == ["hello"]
        async with json_client(server.url) as joiner:  # a join is a use too
            await joiner.send({"type": "join", "room": "lobby"})
            await joiner.expect("history")
            await joiner.expect("presence", event="join")
            assert session_rows(path) == 2
        async with json_client(server.url) as reload:  # an unused one was never kept
            await reload.send({"type": "resume", "session": silent.session, "id": "r2"})
            await reload.expect_error("unknown_session", id="r2")
        assert session_rows(path) == 2


async def test_a_client_that_keeps_telling_eliza_about_its_father_keeps_a_small_session(
    tmp_path: Path,
) -> None:
    # ELIZA files a memory for each "my ..." sentence, and the session's state, stored after
    # every reply, kept them all: 1 KiB more per message, for ever. Now at most MAX_MEMORIES.
    path = tmp_path / "chat.sqlite3"
    limits = Limits(messages_per_second=1000.0, burst=1000)
    async with (
        await Store.open(path) as store,
        serve(load_brain("eliza"), port=0, store=store, limits=limits) as server,
        json_client(server.url) as client,
    ):
        for number in range(3 * MAX_MEMORIES):
            await client.say(f"My father said {number} things {'x' * 900}.")
    with contextlib.closing(sqlite3.connect(path)) as connection:
        (state,) = connection.execute("SELECT state FROM sessions").fetchone()
    memories = json.loads(state)["eliza"]["memories"]
    assert len(memories) == MAX_MEMORIES
    assert f"SAID {3 * MAX_MEMORIES - 1} THINGS" in memories[-1]
    assert len(state) < MAX_MEMORIES * (MAX_TEXT + 100)


async def test_unsent_bytes_are_bounded_by_the_connection_class_not_one_function_each() -> None:
    # bound_write_buffer set a function on each connection: its attributes' dict stopped sharing
    # its layout with the others', 1.7 KB more per connection (10,000 idle connections: 20.9 KiB
    # each, over the 20 KiB target; 18.9 KiB now, benchmarks/capacity.py). The finished server's
    # connection class checks after each read itself; the ping flood test shows it still does.
    async with (
        serve(port=0) as server,
        json_client(server.url),
        connect(server.url) as text,
    ):
        await text.send("hello")
        await text.recv()  # its handler runs: the limit is set
        connections = list(server.websockets_server.connections)
        assert len(connections) == 2  # a JSON client and a plain-text one
        for connection in connections:
            limit = connection.write_buffer_limit  # type: ignore[attr-defined]
            assert limit == Limits().write_buffer_bytes
            assert "data_received" not in vars(connection)
