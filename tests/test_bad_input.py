"""Bad input against a real server: every row of docs/bad-input.md is a test here.

Each test starts a server on 127.0.0.1, port 0, with small limits, and a *bystander*: a client
connected before the mistake that must still chat normally afterwards. After a mistake the SAME
connection must still work (an ``ack``, then a ``reply.end``), and nothing may be logged at ERROR:
client mistakes go to the event log, not the error log.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosedError, ConnectionClosedOK, InvalidStatus
from websockets.frames import CloseCode
from websockets.typing import Origin

from chatbot import ChatServer, echo, serve
from chatbot.brains.base import BrainLike
from chatbot.server.base import TEXT_ONLY
from chatbot.server.limits import Limits
from tests.helpers import STARTUP_TIMEOUT, chat, client
from tests.jsonclient import JsonClient, json_client

TYPES = '"message", "stop", "resume", "join", "leave", "typing", "history"'
MAX_CHARS = 50
# Generous rate limits by default: most tests send many frames and must not trip it by accident.
SMALL = {"max_message_chars": MAX_CHARS, "messages_per_second": 1000.0, "burst": 1000}


@pytest.fixture(autouse=True)
def no_server_errors(caplog: pytest.LogCaptureFixture) -> Any:
    """Fail if anything was logged at ERROR: a client's mistake is never the server's error.

    All loggers, not only ``chatbot.*``: a handler that crashes shows up as websockets'
    "connection handler failed", a dead task as asyncio's "Task exception was never retrieved".
    """
    caplog.set_level(logging.ERROR)
    yield
    errors = [
        f"{r.name}: {r.getMessage()} {r.exc_info[1]!r}" if r.exc_info else r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.ERROR
    ]
    assert not errors, f"the server logged errors for a client's mistake: {errors}"


@asynccontextmanager
async def chat_server(
    brain: BrainLike = echo, **limits: Any
) -> AsyncIterator[tuple[ChatServer, JsonClient]]:
    """A real server with small limits, and a bystander who must be unaffected by the test."""
    async with (
        serve(brain, port=0, limits=Limits(**(SMALL | limits))) as server,
        json_client(server.url) as bystander,
    ):
        yield server, bystander
        # The bystander saw nothing of the others' mistakes: its next message is its own ack.
        await still_works(bystander, "bystander here")


def plain_client(url: str, **kwargs: Any) -> connect:
    """A plain-text client (no subprotocol), straight to the server whatever the proxy."""
    return connect(url, proxy=None, open_timeout=STARTUP_TIMEOUT, **kwargs)


async def still_works(ws: JsonClient, text: str = "still there?") -> None:
    """The connection chats normally: an ack in its own conversation, then the whole reply."""
    ack, end = await ws.say(text, id="after")
    assert ack["conversation"] == ws.session
    assert (end["text"], end["status"]) == (text, "complete")


# --- One row per mistake that the parser catches: the frame, the error code, the message.


@dataclass(frozen=True)
class Row:
    frame: Any  # str or bytes: sent as it is; anything else: sent as JSON
    code: str
    message: str | None = None  # the exact message
    start: str | None = None  # or its stable start (when it quotes Python's JSON error)
    id: str | None = None  # the id the error must echo


def too_long(n: int) -> str:
    return (
        f"The message has {n} characters; the limit is {MAX_CHARS}. Split it into shorter messages."
    )


NOT_JSON = "The frame is not valid JSON ("
CONTROL = "The message contains control characters (other than tab and new line): send plain text."
BAD_ROOM = "Room names have 1 to 32 letters, digits, '-' or '_'; got {}."
BAD_NAME = "A name must be printable text, not empty."
ID_TYPE = '"id" must be a string of at most 64 characters, got '

ROWS = {
    "invalid JSON": Row('{"type": "message", "text": "hi"', "invalid_json", start=NOT_JSON),
    "plain words": Row("hello bot", "invalid_json", start=NOT_JSON),
    "array": Row([1, 2], "not_an_object", 'Expected a JSON object with a "type", got an array.'),
    "string": Row('"hi"', "not_an_object", 'Expected a JSON object with a "type", got a string.'),
    "number": Row(42, "not_an_object", 'Expected a JSON object with a "type", got a number.'),
    "null": Row(None, "not_an_object", 'Expected a JSON object with a "type", got null.'),
    "boolean": Row(True, "not_an_object", 'Expected a JSON object with a "type", got a boolean.'),
    "missing type": Row(
        {"text": "hi", "id": "m1"},
        "missing_type",
        f'The message has no "type": expected one of {TYPES}.',
        id="m1",
    ),
    "unknown type": Row(
        {"type": "shout", "id": "m2"},
        "unknown_type",
        f"Unknown \"type\" 'shout': expected one of {TYPES}.",
        id="m2",
    ),
    "type a number": Row(
        {"type": 7}, "unknown_type", f'Unknown "type" 7: expected one of {TYPES}.'
    ),
    "type a list": Row(
        {"type": ["message"]},
        "unknown_type",
        f'Unknown "type" ["message"]: expected one of {TYPES}.',
    ),
    "missing text": Row(
        {"type": "message", "id": "m3"},
        "missing_field",
        'A "message" message needs a "text" field (a string).',
        id="m3",
    ),
    "missing session": Row(
        {"type": "resume"},
        "missing_field",
        'A "resume" message needs a "session" field (a string).',
    ),
    "missing room": Row(
        {"type": "join"}, "missing_field", 'A "join" message needs a "room" field (a string).'
    ),
    "text a number": Row(
        {"type": "message", "text": 5, "id": "m4"},
        "wrong_type",
        '"text" must be a string, got a number.',
        id="m4",
    ),
    "text a list": Row(
        {"type": "message", "text": ["hi"]}, "wrong_type", '"text" must be a string, got an array.'
    ),
    "text null": Row(
        {"type": "message", "text": None}, "wrong_type", '"text" must be a string, got null.'
    ),
    "session a number": Row(
        {"type": "resume", "session": 12}, "wrong_type", '"session" must be a string, got a number.'
    ),
    "room an object": Row(
        {"type": "join", "room": {}}, "wrong_type", '"room" must be a string, got an object.'
    ),
    # An id that cannot be read is not echoed.
    "id a number": Row(
        {"type": "message", "text": "hi", "id": 5}, "wrong_type", ID_TYPE + "a number."
    ),
    "id too long": Row(
        {"type": "message", "text": "hi", "id": "x" * 65}, "wrong_type", start=ID_TYPE
    ),
    "name too long": Row(
        {"type": "join", "room": "lobby", "name": "N" * 33, "id": "j1"},
        "wrong_type",
        start='"name" must be a string of at most 32 characters, got ',
        id="j1",
    ),
    "empty text": Row(
        {"type": "message", "text": "", "id": "m5"},
        "empty_text",
        "The message is empty: type something first.",
        id="m5",
    ),
    "whitespace-only text": Row(
        {"type": "message", "text": " \t\n \u3000"},
        "empty_text",
        "The message is empty: type something first.",
    ),
    "NUL in text": Row(
        {"type": "message", "text": "hi\x00there", "id": "m6"},
        "control_characters",
        CONTROL,
        id="m6",
    ),
    "escape sequence in text": Row(
        {"type": "message", "text": "\x1b[31mred"}, "control_characters", CONTROL
    ),
    "C1 control in text": Row({"type": "message", "text": "a\x9bb"}, "control_characters", CONTROL),
    "text over max_message_chars": Row(
        {"type": "message", "text": "x" * (MAX_CHARS + 1), "id": "m7"},
        "text_too_long",
        too_long(MAX_CHARS + 1),
        id="m7",
    ),
    "emoji over max_message_chars": Row(
        {"type": "message", "text": "👋" * (MAX_CHARS + 1)},
        "text_too_long",
        too_long(MAX_CHARS + 1),
    ),
    "binary frame": Row(
        b'{"type": "message", "text": "hi"}',
        "binary_not_supported",
        "Binary frames are not supported: send text frames containing JSON.",
    ),
    "resume an unknown session": Row(
        {"type": "resume", "session": "no-such-session-0000", "id": "r1"},
        "unknown_session",
        "No such session: it may have been deleted. Go on with this new one.",
        id="r1",
    ),
    "resume an empty session": Row(
        {"type": "resume", "session": "", "id": "r2"},
        "unknown_session",
        start="No such session: ",
        id="r2",
    ),
    "stop with nothing streaming": Row(
        {"type": "stop", "id": "s1"}, "nothing_to_stop", "No reply is being written.", id="s1"
    ),
    "leave outside a room": Row(
        {"type": "leave", "id": "l1"}, "not_in_room", "You are not in a room.", id="l1"
    ),
    "room with a space": Row(
        {"type": "join", "room": "bad room!", "id": "j2"},
        "bad_room",
        BAD_ROOM.format("'bad room!'"),
        id="j2",
    ),
    "empty room": Row({"type": "join", "room": ""}, "bad_room", BAD_ROOM.format("''")),
    "room too long": Row(
        {"type": "join", "room": "r" * 33}, "bad_room", BAD_ROOM.format("'" + "r" * 33 + "'")
    ),
    "blank name": Row({"type": "join", "room": "lobby", "name": "   "}, "bad_name", BAD_NAME),
    "empty name": Row({"type": "join", "room": "lobby", "name": ""}, "bad_name", BAD_NAME),
    "bell in name": Row({"type": "join", "room": "lobby", "name": "Ada\x07"}, "bad_name", BAD_NAME),
    # Server bugs found by these tests (see the report): today these frames crash or drop the
    # connection. The code is the contract; the wording is the fix's to choose.
    "deeply nested array": Row("[" * 20_000 + "]" * 20_000, "invalid_json"),
    "deeply nested object": Row('{"a":' * 10_000 + "1" + "}" * 10_000, "invalid_json"),
    "lone surrogate in text": Row({"type": "message", "text": "oops \ud800"}, "invalid_json"),
    "lone surrogate in id": Row({"type": "shout", "id": "\udc00"}, "invalid_json"),
    "lone surrogate in type": Row({"type": ["\ud83d"]}, "invalid_json"),
    "lone surrogate in name": Row(
        {"type": "join", "room": "lobby", "name": "\ud800"}, "invalid_json"
    ),
}


@pytest.mark.parametrize("row", list(ROWS.values()), ids=list(ROWS))
async def test_bad_frame_gets_an_error_and_the_connection_stays(row: Row) -> None:
    async with chat_server() as (server, _), json_client(server.url) as ws:
        if isinstance(row.frame, str | bytes):
            await ws.send_frame(row.frame)
        else:
            await ws.send(row.frame)
        error = await ws.expect_error(row.code, row.message, id=row.id)
        if row.start is not None:
            assert error["message"].startswith(row.start), error
        # Nothing else came for that frame, and the same connection still chats in its own
        # private conversation (a refused join or resume changed nothing).
        await still_works(ws)


async def test_client_mistakes_are_recorded_in_the_event_log() -> None:
    # docs/protocol.md: client mistakes are "recorded in the server's event log", all of them,
    # including those refused after parsing.
    frames = {
        "invalid_json": "{",
        "nothing_to_stop": {"type": "stop"},
        "not_in_room": {"type": "leave"},
        "unknown_session": {"type": "resume", "session": "no-such-session-0000"},
    }
    async with chat_server() as (server, _), json_client(server.url) as ws:
        for code, frame in frames.items():
            await (ws.send_frame(frame) if isinstance(frame, str) else ws.send(frame))
            await ws.expect_error(code)
        await still_works(ws)
    logged = [e.detail for e in server.log if e.kind == "error" and e.client == 2]
    assert logged == list(frames)


# --- Accepted on purpose: what looks odd but is fine.

ACCEPTED = {
    "unicode and emoji": "héllo 👋🏽 世界, ça va? Ωμέγα ✓",
    "exactly max_message_chars": "x" * MAX_CHARS,
    "max_message_chars emoji (limit counts characters, not bytes)": "👋" * MAX_CHARS,
    "tab, new line, carriage return": "line 1\n\tline 2\r\nline 3",
    "zero-width joiner family": "👨‍👩‍👧",
    "JSON-looking text": '{"type": "stop"}',
}


@pytest.mark.parametrize("text", list(ACCEPTED.values()), ids=list(ACCEPTED))
async def test_unusual_but_valid_text_is_accepted(text: str) -> None:
    async with chat_server() as (server, _), json_client(server.url) as ws:
        _, end = await ws.say(text, id="u1")
        assert end["text"] == text
        await still_works(ws)


async def test_unknown_fields_are_ignored() -> None:
    async with chat_server() as (server, _), json_client(server.url) as ws:
        await ws.send({"type": "message", "text": "hi", "id": "x1", "future": [1, {"a": None}]})
        ack = await ws.expect("ack", id="x1")
        assert (await ws.reply(ack["seq"]))["text"] == "hi"


async def test_very_long_but_allowed_text_is_accepted() -> None:
    async with serve(echo, port=0, limits=Limits(messages_per_second=100.0)) as server:
        async with json_client(server.url) as ws:
            limit = ws.welcome["limits"]["max_message_chars"]
            assert limit == 4000
            text = "".join(f"{i:>8}" for i in range(limit // 8))  # 4000 characters, all distinct
            _, end = await ws.say(text, id="long")
            assert (len(end["text"]), end["text"]) == (limit, text)
            await ws.send({"type": "message", "text": text + "!", "id": "longer"})
            await ws.expect_error(
                "text_too_long",
                "The message has 4001 characters; the limit is 4000. "
                "Split it into shorter messages.",
                id="longer",
            )
            await still_works(ws)


# --- Limits: frames, rate, queue, connections, origins.


async def test_frame_over_max_frame_bytes_closes_the_connection_with_1009() -> None:
    async with chat_server(max_frame_bytes=1024) as (server, _), json_client(server.url) as ws:
        await ws.send({"type": "message", "text": "x" * 2000})
        with pytest.raises(ConnectionClosedError) as closed:
            await ws.recv()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == CloseCode.MESSAGE_TOO_BIG == 1009
        # The server itself is fine: a new connection chats.
        async with json_client(server.url) as again:
            await still_works(again)


async def test_frame_just_under_max_frame_bytes_is_read() -> None:
    async with chat_server(max_frame_bytes=1024) as (server, _), json_client(server.url) as ws:
        frame = '{"type": "message", "text": "' + "x" * 980 + '"}'
        assert len(frame.encode()) <= 1024
        await ws.send_frame(frame)  # read, then refused for its length: not closed
        await ws.expect_error("text_too_long", too_long(980))
        await still_works(ws)


RATE_LIMITED = re.compile(
    r"Too many messages: at most 1 per second \(bursts of 3\)\. "
    r"Wait (\d+\.\d) s and send it again\."
)


async def test_flood_faster_than_the_rate_limit_is_refused_then_accepted_after_waiting() -> None:
    async with (
        chat_server(messages_per_second=1.0, burst=3) as (server, _),
        json_client(server.url) as ws,
    ):
        for i in range(5):
            await ws.send({"type": "message", "text": f"flood {i}", "id": f"f{i}"})
        # The burst of 3 is accepted and answered; the 2 frames beyond it are dropped.
        acks, ends, errors = [], [], []
        while len(ends) < 3 or len(errors) < 2:
            message = await ws.recv()
            {"ack": acks, "reply.end": ends, "error": errors}.get(message["type"], []).append(
                message
            )
        assert [a["id"] for a in acks] == ["f0", "f1", "f2"]
        assert [e["text"] for e in ends] == ["flood 0", "flood 1", "flood 2"]
        assert {e["code"] for e in errors} == {"rate_limited"}
        # The frame is not parsed, so its id is not echoed (see the report).
        assert all("id" not in e for e in errors)
        advice = [RATE_LIMITED.fullmatch(e["message"]) for e in errors]
        assert all(advice), errors
        last = advice[-1]
        assert last is not None
        # Follow the advice (a time to wait is the behaviour under test, not synchronisation);
        # a little margin, as it is rounded to 0.1 s.
        await asyncio.sleep(float(last[1]) + 0.1)
        await still_works(ws)


async def test_too_many_pending_messages_get_busy() -> None:
    gate = asyncio.Event()

    async def slow(message: str) -> Any:
        await gate.wait()
        yield message

    async with chat_server(slow, pending_messages=2) as (server, _), json_client(server.url) as ws:
        await ws.send({"type": "message", "text": "first", "id": "m1"})
        first = await ws.expect("ack", id="m1")
        start = await ws.expect("reply.start", to=first["seq"])  # taken: the queue is empty
        for i in (2, 3):  # these two fill the queue
            await ws.send({"type": "message", "text": f"queued {i}", "id": f"m{i}"})
            await ws.expect("ack", id=f"m{i}")
        await ws.send({"type": "message", "text": "one too many", "id": "m4"})
        await ws.expect_error(
            "busy",
            "Messages already waiting for the bot: 2. Wait for its replies, then send this again.",
            id="m4",
        )
        gate.set()
        await ws.expect("reply.chunk", reply=start["reply"], text="first")
        await ws.expect("reply.end", reply=start["reply"], status="complete")
        assert (await ws.reply(first["seq"] + 1))["text"] == "queued 2"
        assert (await ws.reply(first["seq"] + 2))["text"] == "queued 3"
        _, end = await ws.say("one too many", id="m4")  # sent again: accepted now
        assert end["text"] == "one too many"
        await still_works(ws)


async def drain_until_answer(ws: JsonClient, id: str) -> tuple[dict[str, Any], list[Any]]:
    """Receive until the ack or error carrying ``id``; return it and what came before."""
    seen = []
    while True:
        message = await ws.recv()
        if message["type"] in ("ack", "error") and message.get("id") == id:
            return message, seen
        seen.append(message)


async def test_two_room_members_racing_for_the_last_slot_get_one_ack_and_one_busy() -> None:
    gate = asyncio.Event()

    async def slow(message: str) -> Any:
        await gate.wait()
        yield message

    async with (
        chat_server(slow, pending_messages=1) as (server, _),
        json_client(server.url) as ada,
        json_client(server.url) as bob,
    ):
        await ada.send({"type": "join", "room": "race", "name": "Ada"})
        await ada.expect("history", room="race")
        await ada.expect("presence", event="join", name="Ada", members=1)
        await bob.send({"type": "join", "room": "race", "name": "Bob"})
        await bob.expect("history", room="race")
        await bob.expect("presence", event="join", name="Bob", members=2)
        await ada.expect("presence", event="join", name="Bob", members=2)
        await ada.send({"type": "message", "text": "first", "id": "a1"})
        await ada.expect("ack", id="a1")
        await ada.expect("reply.start")  # the worker holds it: one free slot left
        await bob.expect("message", author="Ada", text="first")
        await bob.expect("reply.start")
        # Both ask for the last slot at once; the store's write is awaited in between.
        await asyncio.gather(
            ada.send({"type": "message", "text": "from Ada", "id": "a2"}),
            bob.send({"type": "message", "text": "from Bob", "id": "b2"}),
        )
        (ada_answer, _), (bob_answer, _) = await asyncio.gather(
            drain_until_answer(ada, "a2"), drain_until_answer(bob, "b2")
        )
        assert sorted([ada_answer["type"], bob_answer["type"]]) == ["ack", "error"], (
            ada_answer,
            bob_answer,
        )
        refused = ada_answer if ada_answer["type"] == "error" else bob_answer
        assert refused["code"] == "busy"
        gate.set()


async def test_too_many_connections_get_http_503() -> None:
    async with (
        chat_server(max_connections=2) as (server, _),  # the bystander is one of the two
        json_client(server.url) as second,
    ):
        for open_client in (json_client, plain_client):  # JSON and plain-text clients alike
            with pytest.raises(InvalidStatus) as refused:
                async with open_client(server.url):
                    pass
            assert refused.value.response.status_code == 503
            assert refused.value.response.body == (
                b"The chat server is full (2 connections). Try again in a minute.\n"
            )
        await still_works(second)
        await second.close()
        await server.log.wait_for("close", client=2)  # its place is free again
        async with json_client(server.url) as third:
            await still_works(third)


REFUSED_ORIGINS = [
    "https://evil.example",
    "null",  # a sandboxed iframe or a file:// page
    "http://127.0.0.1.evil.example",
    "http://localhost.evil.example:8888",
    "https://hub.example:8443",  # allowed_origins names https://hub.example only
]


@pytest.mark.parametrize("origin", REFUSED_ORIGINS)
async def test_browser_origin_from_another_site_gets_http_403(origin: str) -> None:
    async with chat_server(allowed_origins=("https://hub.example",)) as (server, _):
        for open_client in (json_client, plain_client):
            with pytest.raises(InvalidStatus) as refused:
                async with open_client(server.url, origin=Origin(origin)):
                    pass
            assert refused.value.response.status_code == 403
            assert (
                refused.value.response.body
                == (
                    f"Origin {origin} is not allowed; start the server with --allow-origin "
                    f"{origin} to allow it.\n"
                ).encode()
            )


ALLOWED_ORIGINS = {
    "no Origin (not a browser)": (None, ()),
    "same origin": ("http://chat.example:{port}", ()),
    "localhost": ("http://localhost:8888", ()),
    "127.0.0.1": ("http://127.0.0.1:3000", ()),
    "::1": ("http://[::1]:8888", ()),
    "allowed_origins": ("https://hub.example", ("https://hub.example",)),
    "allowed_origins *": ("https://anywhere.example", ("*",)),
}


@pytest.mark.parametrize(
    "origin, allowed", list(ALLOWED_ORIGINS.values()), ids=list(ALLOWED_ORIGINS)
)
async def test_allowed_origins_can_chat(origin: str | None, allowed: tuple[str, ...]) -> None:
    # chat.example is a name of this server (--allow-host): other names are refused (403) as DNS
    # rebinding (tests/test_handshake.py).
    async with chat_server(allowed_origins=allowed, allowed_hosts=("chat.example",)) as (server, _):
        # The page's own origin: the handshake's Host names the server as the browser saw it
        # (chat.example:PORT), while the socket goes to 127.0.0.1.
        url = f"ws://chat.example:{server.port}/"
        options: dict[str, Any] = {"host": server.host, "port": server.port}
        if origin is not None:
            options["origin"] = Origin(origin.format(port=server.port))
        async with json_client(url, **options) as ws:
            await still_works(ws)
        async with plain_client(url, **options) as plain:  # plain text: the same policy
            assert await chat(plain, "hi") == "hi"


async def test_silent_client_is_closed_after_idle_timeout() -> None:
    # No bystander here: it would be idle too.
    async with serve(echo, port=0, limits=Limits(idle_timeout=0.3)) as server:
        async with json_client(server.url) as ws:
            with pytest.raises(ConnectionClosedOK) as closed:
                await ws.recv()
            assert closed.value.rcvd is not None
            assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1000, "idle timeout")


async def test_silent_plain_text_client_is_closed_after_the_same_idle_timeout() -> None:
    # Plain text too: otherwise one host could hold every connection slot with silent clients.
    async with serve(echo, port=0, limits=Limits(idle_timeout=0.3)) as server:
        async with client(server.url) as ws:
            assert await chat(ws, "hello") == "hello"  # a reply re-arms the timeout
            with pytest.raises(ConnectionClosedOK) as closed:
                await ws.recv()
            assert closed.value.rcvd is not None
            assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1000, "idle timeout")
        await server.log.wait_for("close")
    assert [str(event) for event in server.log][-1] == "client 1   close    idle timeout"


# --- The plain-text mode: the same limits, answered in words.

SLOW_DOWN = "Slow down: at most 1 messages per second. Send that one again in a moment."


async def test_plain_text_binary_frame_gets_a_text_reply_and_the_connection_stays() -> None:
    async with chat_server() as (server, _), client(server.url) as ws:
        await ws.send(b"\x00\x01")
        assert await ws.recv() == TEXT_ONLY == "Sorry, I only understand text messages."
        assert await chat(ws, "text works") == "text works"


async def test_plain_text_too_long_gets_a_text_reply_and_the_connection_stays() -> None:
    async with chat_server() as (server, _), client(server.url) as ws:
        assert await chat(ws, "x" * (MAX_CHARS + 1)) == (
            f"Sorry, that message is too long ({MAX_CHARS + 1} characters; "
            f"the limit is {MAX_CHARS})."
        )
        assert await chat(ws, "x" * MAX_CHARS) == "x" * MAX_CHARS
        assert await chat(ws, "👋🏽 ünïcödé") == "👋🏽 ünïcödé"


async def test_plain_text_flood_gets_slow_down_then_accepted_after_waiting() -> None:
    async with (
        chat_server(messages_per_second=1.0, burst=3) as (server, _),
        client(server.url) as ws,
    ):
        for i in range(5):
            await ws.send(f"flood {i}")
        replies = [await ws.recv() for _ in range(5)]
        assert replies == ["flood 0", "flood 1", "flood 2", SLOW_DOWN, SLOW_DOWN]
        await asyncio.sleep(1.1)  # one token comes back after 1 s: waiting is the behaviour
        assert await chat(ws, "again") == "again"


async def test_plain_text_binary_flood_is_rate_limited_too() -> None:
    # Every frame costs a token in the JSON mode, binary ones included; in the plain-text mode a
    # binary frame is answered before the bucket is asked, so a binary flood is never limited.
    async with (
        chat_server(messages_per_second=1.0, burst=3) as (server, _),
        client(server.url) as ws,
    ):
        for _ in range(5):
            await ws.send(b"\x00")
        replies = [await ws.recv() for _ in range(5)]
        assert replies == [TEXT_ONLY] * 3 + [SLOW_DOWN] * 2
