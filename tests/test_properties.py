"""Property-based tests: generated frames thrown at the parser, and at one real server.

Hypothesis needs ``hypothesis>=6.100`` (requirements.txt). Every test here is deterministic
(``derandomize=True``, no example database) and bounded (a fixed number of examples, each taking
milliseconds), so CI runs the same examples every time.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from contextlib import AsyncExitStack

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from chatbot import ChatServer, echo, serve
from chatbot.server import protocol
from chatbot.server.limits import Limits
from chatbot.server.protocol import (
    ROOM_NAME,
    ClientMessage,
    Join,
    Leave,
    ProtocolError,
    Resume,
    Say,
    Stop,
    Typing,
)
from tests.jsonclient import JsonClient, json_client

# Every error code of docs/protocol.md ("Errors").
KNOWN_CODES = frozenset(
    {
        "binary_not_supported",
        "invalid_json",
        "not_an_object",
        "missing_type",
        "unknown_type",
        "missing_field",
        "wrong_type",
        "empty_text",
        "text_too_long",
        "control_characters",
        "bad_room",
        "bad_name",
        "name_reserved",
        "name_taken",
        "rate_limited",
        "busy",
        "unknown_session",
        "nothing_to_stop",
        "not_in_room",
        "brain_error",
        "brain_failed",
    }
)
MAX_CHARS = 100
# The rate limit is out of the way: hypothesis sends frames as fast as the server answers them.
LIMITS = Limits(max_message_chars=MAX_CHARS, messages_per_second=1e6, burst=1_000_000)

DETERMINISTIC = settings(
    deadline=None,  # a shared 2-core CI machine: timing says nothing about correctness here
    derandomize=True,  # the same examples on every run
    database=None,  # no .hypothesis folder, no replay of examples from another run
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# --- Strategies

# Text that may hold anything a JSON string can spell, lone surrogates ("\ud800") included: the
# frame is still valid UTF-8, as json.dumps escapes them. (st.text() never makes surrogates, so
# they are put in by hand, in about a third of the strings.)
with_surrogate = st.builds(
    lambda before, surrogate, after: before + surrogate + after,
    st.text(max_size=10),
    st.characters(categories=["Cs"]),
    st.text(max_size=10),
)


def any_text(max_size: int) -> st.SearchStrategy[str]:
    return st.one_of(st.text(max_size=max_size), st.text(max_size=max_size), with_surrogate)


texts = any_text(MAX_CHARS + 20)
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | any_text(20)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
TYPES = ["message", "stop", "resume", "join", "leave", "typing", "history"]
rooms = st.from_regex(ROOM_NAME, fullmatch=True)
# Printable, no surrogates: what a well-behaved client sends.
printable = st.characters(categories=["L", "M", "N", "P", "S", "Zs"])
ids = st.none() | st.text(printable, max_size=64)


def allowed_name(name: str) -> bool:
    """A name the server takes as it is: already normalised, not reserved (issue 14)."""
    try:
        return protocol.clean_name(name) == name
    except ProtocolError:
        return False


names = st.text(printable, min_size=1, max_size=32).filter(allowed_name)

random_objects = st.builds(
    lambda known, extra: extra | known,
    st.fixed_dictionaries(
        # A known type most of the time, so the fields get checked; json_values has objects
        # without "type" too.
        {"type": st.sampled_from(TYPES) | st.sampled_from(TYPES) | json_values},
        optional={
            "text": texts | texts | json_values,
            "id": any_text(70) | json_values,
            "session": any_text(70) | json_values,
            "room": rooms | texts | json_values,
            "name": any_text(40) | json_values,
        },
    ),
    st.dictionaries(st.text(max_size=8), json_values, max_size=2),
)

valid_messages: st.SearchStrategy[ClientMessage] = st.one_of(
    st.builds(
        Say,
        st.text(printable | st.sampled_from("\t\n"), min_size=1, max_size=MAX_CHARS).filter(
            str.strip
        ),
        ids,
    ),
    st.builds(Stop, ids),
    st.builds(Resume, st.text(printable, min_size=1, max_size=64), ids),
    st.builds(Join, rooms, st.none() | names, ids),
    st.builds(Leave, ids),
    st.builds(Typing, ids),
)
# Well-formed messages with one field gone wrong: the field-level error codes.
with_control = st.builds(
    lambda before, control, after: before + control + after,
    st.text(max_size=10),
    st.characters(categories=["Cc"], exclude_characters="\t\n\r"),
    st.text(max_size=10),
)
bad_texts = st.one_of(
    st.sampled_from(["", " ", "\t\n", "\u3000"]),
    st.text(min_size=MAX_CHARS + 1, max_size=MAX_CHARS + 30).filter(str.strip),
    with_control,
)
near_valid = st.one_of(
    st.fixed_dictionaries({"type": st.just("message"), "text": bad_texts}, optional={"id": ids}),
    st.fixed_dictionaries(
        {"type": st.just("join"), "room": rooms | texts},
        optional={"name": st.sampled_from(["", "  "]) | with_control | any_text(40), "id": ids},
    ),
    st.fixed_dictionaries(
        {"type": st.sampled_from(TYPES), "id": st.text(min_size=65, max_size=80) | json_scalars},
        optional={"text": st.just("hi"), "room": st.just("lobby"), "session": st.just("s")},
    ),
)
KIND = {
    Say: "message",
    Stop: "stop",
    Resume: "resume",
    Join: "join",
    Leave: "leave",
    Typing: "typing",
}


def to_json(message: ClientMessage) -> str:
    """The frame a client sends for ``message`` (fields that are None left out)."""
    fields = {k: v for k, v in dataclasses.asdict(message).items() if v is not None}
    return json.dumps({"type": KIND[type(message)]} | fields)


frames = st.one_of(
    st.text(max_size=200),  # arbitrary text, mostly not JSON (UTF-8: no lone surrogates)
    json_values.map(json.dumps),  # arbitrary JSON values, mostly not objects
    random_objects.map(json.dumps),  # objects with random types and fields
    near_valid.map(json.dumps),  # well-formed but for one field, twice as likely
    near_valid.map(json.dumps),
    valid_messages.map(to_json),  # well-formed messages, twice as likely
    valid_messages.map(to_json),
    st.binary(max_size=64),  # binary frames
)

# --- The parser alone


@settings(DETERMINISTIC, max_examples=500)
@given(frame=frames | any_text(500) | st.binary(max_size=100))
def test_parse_raises_nothing_but_protocol_error(frame: str | bytes) -> None:
    try:
        parsed = protocol.parse(frame, max_chars=MAX_CHARS)
    except ProtocolError as exc:
        assert exc.code in KNOWN_CODES
        assert isinstance(exc.message, str) and exc.message
        assert exc.id is None or (isinstance(exc.id, str) and len(exc.id) <= 64)
    else:
        assert isinstance(parsed, Say | Stop | Resume | Join | Leave | Typing)


DEEP = {
    "array": "[" * 5000 + "]" * 5000,
    "object": '{"a":' * 5000 + "1" + "}" * 5000,
    "message in arrays": '{"type": "message", "text": "hi", "x": ' + "[" * 5000 + "]" * 5000 + "}",
}


@pytest.mark.parametrize("frame", list(DEEP.values()), ids=list(DEEP))
def test_parse_refuses_deep_nesting_with_protocol_error(frame: str) -> None:
    # Generated JSON is never nested 1000 deep; a hostile client's is (a 10 kB frame).
    with pytest.raises(ProtocolError) as refused:
        protocol.parse(frame, max_chars=MAX_CHARS)
    assert refused.value.code == "invalid_json"


@settings(DETERMINISTIC, max_examples=300)
@given(frame=random_objects.map(json.dumps))
@example(frame=json.dumps({"type": "message", "text": "\ud800"}))
@example(frame=json.dumps({"type": ["\udfff"]}))
def test_whatever_parse_returns_can_be_stored_and_sent(frame: str) -> None:
    # Everything parse lets through ends up in SQLite or on the wire, both UTF-8: a lone
    # surrogate that JSON spelled as an escape must not get through (it crashes the connection).
    try:
        parsed = protocol.parse(frame, max_chars=MAX_CHARS)
    except ProtocolError as exc:
        outgoing = [exc.message, exc.id or ""]  # sent back in the error
    else:
        outgoing = [v for v in dataclasses.astuple(parsed) if isinstance(v, str)]
    for text in outgoing:
        text.encode("utf-8")  # raises UnicodeEncodeError on a lone surrogate


@settings(DETERMINISTIC, max_examples=300)
@given(message=valid_messages)
def test_valid_messages_round_trip(message: ClientMessage) -> None:
    assert protocol.parse(to_json(message), max_chars=MAX_CHARS) == message


# --- The JSON writer: orjson when installed, else the standard library, with the same output

# What server messages carry: text (never a lone surrogate: parse refuses them, so they never
# reach a reply), integers, booleans, None, lists and objects. No floats here: the two writers
# spell some exponents differently (1e-07, 1e-7); see the next test.
sent_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=30)
sent_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | sent_text,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(sent_text, children, max_size=4)
    ),
    max_leaves=12,
)
sent_fields = st.dictionaries(sent_text, sent_values, max_size=6)


@settings(DETERMINISTIC, max_examples=300)
@given(fields=sent_fields)
@example(fields={"text": '\x00\x1f\x7f\u2028 \\ " é 😀', "seq": 2**64 - 1})
def test_both_json_writers_write_the_same_text(fields: dict[str, object]) -> None:
    message = {"type": "reply.end"} | fields
    assert protocol._dumps(message) == protocol._dumps_stdlib(message)


def utf8(value: object) -> bool:
    try:
        json.dumps(value, ensure_ascii=False).encode()
    except UnicodeEncodeError:  # a lone surrogate: never in a reply (see above)
        return False
    return True


@settings(DETERMINISTIC, max_examples=200)
@given(value=json_values.filter(utf8))
@example(value=[1e-07, 1e16, 5e-324, -0.0, 0.1])
def test_both_json_writers_give_the_same_objects(value: object) -> None:
    message = {"type": "history", "messages": value}
    assert json.loads(protocol._dumps(message)) == json.loads(protocol._dumps_stdlib(message))


def test_both_json_writers_write_the_same_welcome() -> None:
    welcome = {"type": "welcome", "limits": Limits().public(), "session": "abc", "name": "Ada"}
    assert protocol._dumps(welcome) == protocol._dumps_stdlib(welcome)


def test_orjson_writes_the_json_when_installed() -> None:
    pytest.importorskip("orjson")  # requirements.txt installs it
    assert protocol.JSON_LIBRARY == "orjson"


def test_without_orjson_the_standard_library_writes_the_same_frames() -> None:
    import os
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['orjson'] = None\n"
        "from chatbot.server import protocol\n"
        "print(protocol.JSON_LIBRARY)\n"
        "print(protocol.reply_end('r1', 'Hé \\u2028 \"ok\"', 2, 'complete'))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        encoding="utf-8",
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
        check=True,
        timeout=60,
    )
    expected = protocol.reply_end("r1", 'Hé \u2028 "ok"', 2, "complete")
    assert result.stdout == f"json\n{expected}\n"


# --- One real server, one connection, every example


class Harness:
    """One server and one JSON client, kept across hypothesis examples, and what we know of the
    client's state (its room and name) to predict each answer."""

    def __init__(self) -> None:
        self.stack = AsyncExitStack()
        self.client_stack = AsyncExitStack()
        self.server: ChatServer | None = None
        self.ws: JsonClient | None = None
        self.room: str | None = None
        self.name = ""
        self.broken = False  # a failed example: the next one starts on a new connection
        self.examples = 0

    async def start(self) -> None:
        self.server = await self.stack.enter_async_context(serve(echo, port=0, limits=LIMITS))
        await self.connect()

    async def connect(self) -> None:
        assert self.server is not None
        await self.client_stack.aclose()
        self.ws = await self.client_stack.enter_async_context(json_client(self.server.url))
        self.room, self.name, self.broken = None, self.ws.name, False

    async def close(self) -> None:
        await self.client_stack.aclose()
        await self.stack.aclose()

    async def check(self, frame: str | bytes) -> None:
        """Send ``frame``; check its answers are exactly what the protocol promises."""
        if self.broken:
            await self.connect()
        try:
            async with asyncio.timeout(15):
                await self._check(frame)
        except BaseException:
            self.broken = True
            raise

    async def _check(self, frame: str | bytes) -> None:
        ws = self.ws
        assert ws is not None
        self.examples += 1
        await ws.send_frame(frame)
        # The oracle: what the parser makes of the frame decides what must come back. The
        # parser's own properties are tested above; here, that the server answers accordingly.
        try:
            request = protocol.parse(frame, max_chars=MAX_CHARS)
        except ProtocolError as exc:
            assert exc.code in KNOWN_CODES
            await ws.expect_error(exc.code, exc.message, id=exc.id)
        else:
            await self._answered(ws, request)
        # A sentinel with no side effect: its error must be the very next message, so nothing
        # more came for the frame, and the connection is still open and answering.
        sentinel = f"sentinel-{self.examples}"
        await ws.send({"type": "sentinel", "id": sentinel})
        await ws.expect_error("unknown_type", id=sentinel)

    async def _answered(self, ws: JsonClient, request: ClientMessage) -> None:
        match request:
            case Say():
                conversation = f"room:{self.room}" if self.room else ws.session
                ack = await ws.expect("ack", conversation=conversation)
                assert ack.get("id") == request.id
                end = await ws.reply(ack["seq"])
                assert (end["text"], end["status"]) == (request.text, "complete")
            case Stop():
                await ws.expect_error(
                    "nothing_to_stop", "No reply is being written.", id=request.id
                )
            case Resume():  # a made-up session: no such session
                await ws.expect_error("unknown_session", id=request.id)
            case Join():
                if self.room is not None:
                    await ws.expect("presence", room=self.room, event="leave", name=self.name)
                self.room, self.name = request.room, request.name or self.name
                await ws.expect("history", room=self.room, conversation=f"room:{self.room}")
                await ws.expect("presence", room=self.room, event="join", name=self.name, members=1)
            case Leave():
                if self.room is None:
                    await ws.expect_error("not_in_room", "You are not in a room.", id=request.id)
                else:
                    await ws.expect(
                        "presence", room=self.room, event="leave", name=self.name, members=0
                    )
                    self.room = None
            case Typing():
                pass  # alone (or outside a room): nobody to tell, no answer


def test_server_answers_every_generated_frame_and_stays_open(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Why a sync test with asyncio.Runner: hypothesis calls the @given function synchronously,
    # once per example, and calls it again to replay and shrink a failure. conftest runs each
    # async test in a new event loop, which would mean a new server per example. An
    # asyncio.Runner keeps ONE loop across runner.run() calls, so the server and the
    # connection started in it survive from one example to the next; between calls the loop
    # simply pauses (nothing here depends on wall-clock time but keepalive pings, 20 s apart).
    # No thread either: no cross-thread futures, and a failure surfaces as itself, with
    # hypothesis's minimal example.
    caplog.set_level(logging.ERROR)
    harness = Harness()
    with asyncio.Runner() as runner:
        runner.run(harness.start())
        try:
            # One bug at a time: shrinking several distinct failures takes minutes, not seconds.
            @settings(DETERMINISTIC, max_examples=200, report_multiple_bugs=False)
            @given(frame=frames)
            def answers(frame: str | bytes) -> None:
                runner.run(harness.check(frame))

            answers()
            assert harness.examples >= 100, "hypothesis ran too few examples to mean much"
            # The server still welcomes a fresh client, and chats with it.
            runner.run(fresh_client_chats(harness))
        finally:
            runner.run(harness.close())
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, f"the server logged errors for client mistakes: {errors}"


async def fresh_client_chats(harness: Harness) -> None:
    assert harness.server is not None
    async with json_client(harness.server.url) as ws:
        ack, end = await ws.say("hello after the storm", id="fresh")
        assert ack["conversation"] == ws.session
        assert (end["text"], end["status"]) == ("hello after the storm", "complete")
