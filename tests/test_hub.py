"""The JSON protocol end to end: streaming, Stop, sessions that survive restarts, rooms,
backpressure and faults, against real servers and clients on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection
from websockets.asyncio.server import serve as websockets_serve
from websockets.frames import Frame, Opcode

from chatbot import serve
from chatbot.brains.base import Brain, Conversation
from chatbot.server.hub import HISTORY_CHARS
from chatbot.server.limits import Limits
from chatbot.storage.sqlite import Store
from tests.helpers import TurnCounter, chatbot_process
from tests.redis_server import serve_on

PROTOCOL = "chatbot.v1"


def json_client(url: str) -> connect:
    return connect(url, subprotocols=[PROTOCOL], proxy=None, open_timeout=30)  # type: ignore[list-item]


async def receive(ws: ClientConnection) -> dict[str, Any]:
    message = json.loads(await ws.recv())
    assert isinstance(message, dict)
    return message


async def expect(ws: ClientConnection, kind: str) -> dict[str, Any]:
    """Receive until a message of ``kind`` arrives (bounded by the test's deadline)."""
    while True:
        message = await receive(ws)
        if message["type"] == kind:
            return message


async def say(
    ws: ClientConnection, text: str, **extra: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Send a chat message; return its ack and the reply's end."""
    await ws.send(json.dumps({"type": "message", "text": text, **extra}))
    ack = await expect(ws, "ack")
    end = await expect(ws, "reply.end")
    return ack, end


async def stuck_client(port: int, subprotocol: str | None = "chatbot.v1") -> asyncio.StreamWriter:
    """Open a connection by hand (chatbot.v1, or plain text), from a client that never reads.

    Its socket has a tiny receive buffer, and its StreamReader stops reading from the socket
    once 2 KiB are waiting: the kernel's buffers fill, and the server's sends back up.
    """
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock, limit=1024)
    offer = b"" if subprotocol is None else f"Sec-WebSocket-Protocol: {subprotocol}\r\n".encode()
    writer.write(
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        + offer
        + b"\r\n"
    )
    response = await reader.readuntil(b"\r\n\r\n")
    assert response.startswith(b"HTTP/1.1 101 "), response
    return writer


def masked_text_frame(text: str) -> bytes:
    """A client's text frame, masked as RFC 6455 requires of clients."""
    return Frame(Opcode.TEXT, text.encode()).serialize(mask=True, extensions=[])


class Countdown(Brain):
    """Streams numbers slowly, and tells when it was cancelled."""

    name = "countdown"

    def __init__(self, delay: float = 0.02) -> None:
        self.delay = delay
        self.released = asyncio.Event()

    async def stream(self, message: str, conversation: Conversation) -> AsyncIterator[str]:
        try:
            for n in range(200, 0, -1):
                yield f"{n} "
                await asyncio.sleep(self.delay)
            yield "lift-off"
        finally:
            self.released.set()


async def test_welcome_ack_and_a_streamed_reply(backend: tuple[str, str] | None) -> None:
    async with serve_on(backend) as server, json_client(server.url) as ws:
        assert ws.subprotocol == PROTOCOL
        welcome = await receive(ws)
        assert welcome["type"] == "welcome" and welcome["protocol"] == PROTOCOL
        assert welcome["name"] == "guest-1" and welcome["brain"] == "echo"
        assert welcome["limits"]["max_message_chars"] == 4000
        await ws.send(json.dumps({"type": "message", "text": "hello", "id": "m1"}))
        ack = await receive(ws)
        assert ack == {"type": "ack", "id": "m1", "conversation": welcome["session"], "seq": 1}
        assert await receive(ws) == {"type": "reply.start", "reply": "r1", "to": 1}
        assert await receive(ws) == {"type": "reply.chunk", "reply": "r1", "text": "hello"}
        end = await receive(ws)
        assert end == {
            "type": "reply.end",
            "reply": "r1",
            "text": "hello",
            "seq": 2,
            "status": "complete",
        }


async def test_plain_text_clients_still_get_one_text_reply() -> None:
    async with serve(port=0) as server, connect(server.url, proxy=None) as ws:
        assert ws.subprotocol is None
        await ws.send("plain")
        assert await ws.recv() == "plain"


async def test_chunks_arrive_in_order_and_join_to_the_reply(
    backend: tuple[str, str] | None,
) -> None:
    async def words(message: str) -> AsyncIterator[str]:
        for word in message.split():
            await asyncio.sleep(0)  # the brain waits between words: each goes out on its own
            yield word + " "

    async with serve_on(backend, words) as server, json_client(server.url) as ws:
        await expect(ws, "welcome")
        await ws.send(json.dumps({"type": "message", "text": "one two three four"}))
        chunks = []
        while (message := await receive(ws))["type"] != "reply.end":
            if message["type"] == "reply.chunk":
                chunks.append(message["text"])
        assert chunks == ["one ", "two ", "three ", "four "]
        assert message["text"] == "".join(chunks)


async def test_chunks_made_without_waiting_travel_in_one_frame(
    backend: tuple[str, str] | None,
) -> None:
    # Issue 16: a brain that yields word after word without waiting (ELIZA) costs one frame,
    # not one per word; a wait in between sends what was gathered so far.
    async def words(message: str) -> AsyncIterator[str]:
        for word in message.split():
            if word == "|":
                await asyncio.sleep(0.01)
                continue
            yield word + " "

    async with serve_on(backend, words) as server, json_client(server.url) as ws:
        await expect(ws, "welcome")
        await ws.send(json.dumps({"type": "message", "text": "one two | three four"}))
        kinds, chunks = [], []
        while (message := await receive(ws))["type"] != "reply.end":
            kinds.append(message["type"])
            if message["type"] == "reply.chunk":
                chunks.append(message["text"])
        assert kinds == ["ack", "reply.start", "reply.chunk", "reply.chunk"]
        assert chunks == ["one two ", "three four "]
        assert message["text"] == "one two three four "


async def test_stop_cancels_the_reply_promptly_and_stores_it_as_stopped(
    backend: tuple[str, str] | None,
) -> None:
    brain = Countdown()
    async with serve_on(backend, brain) as server, json_client(server.url) as ws:
        welcome = await expect(ws, "welcome")
        await ws.send(json.dumps({"type": "message", "text": "count"}))
        await expect(ws, "reply.chunk")
        await ws.send(json.dumps({"type": "stop"}))
        end = await expect(ws, "reply.end")
        assert end["status"] == "stopped"
        assert end["text"].startswith("200 ") and "lift-off" not in end["text"]
        assert brain.released.is_set()  # the brain's finally ran
        await ws.send(json.dumps({"type": "stop", "id": "s2"}))
        assert await expect(ws, "error") == {
            "type": "error",
            "code": "nothing_to_stop",
            "message": "No reply is being written.",
            "id": "s2",
        }
        assert server.hub is not None
        stored = await server.hub.store.history(welcome["session"])
        assert [(m.role, m.status) for m in stored] == [("user", "complete"), ("bot", "stopped")]


async def test_messages_sent_during_a_reply_are_acknowledged_at_once_and_answered_in_order(
    backend: tuple[str, str] | None,
) -> None:
    release = asyncio.Event()

    async def held_echo(message: str) -> AsyncIterator[str]:
        await release.wait()  # no reply ends before the test has seen every ack
        yield message

    async with serve_on(backend, held_echo) as server, json_client(server.url) as ws:
        await expect(ws, "welcome")
        for text in ["first", "second", "third"]:
            await ws.send(json.dumps({"type": "message", "text": text}))
        # All three are acknowledged (stored) while the first reply is still being made: an ack
        # that waited for a reply would never come, and the bound below would fail the test.
        # (It slept 50 ms in the brain and hoped for the acks meanwhile: on Python 3.13, with
        # Redis, on a busy machine, the third came after the first reply.)
        kinds: list[str] = []
        async with asyncio.timeout(30):
            while kinds.count("ack") < 3:
                kinds.append((await receive(ws))["type"])
        assert "reply.end" not in kinds
        release.set()
        ends: list[str] = []
        while len(ends) < 3:
            message = await receive(ws)
            if message["type"] == "reply.end":
                ends.append(message["text"])
        assert ends == ["first", "second", "third"]


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
async def test_resume_after_a_kill_and_restart_shows_every_acknowledged_message(
    tmp_path: Path, signum: signal.Signals
) -> None:
    db = str(tmp_path / "chat.sqlite3")
    acknowledged: list[str] = []
    async with chatbot_process("--brain", "echo", "--db", db) as first:
        async with json_client(first.url) as ws:
            session = (await expect(ws, "welcome"))["session"]
            for n in range(5):
                ack, _ = await say(ws, f"message {n}")
                acknowledged.append(f"message {n}")
            # One more, acknowledged, then the server is killed at once: no time to flush.
            await ws.send(json.dumps({"type": "message", "text": "last words"}))
            await expect(ws, "ack")
            acknowledged.append("last words")
            first.process.send_signal(signum)
            assert await first.process.wait() == (0 if signum == signal.SIGTERM else -signum)
    async with chatbot_process("--brain", "echo", "--db", db) as second:
        async with json_client(second.url) as ws:
            await expect(ws, "welcome")
            await ws.send(json.dumps({"type": "resume", "session": session}))
            history = await expect(ws, "history")
            said = [m["text"] for m in history["messages"] if m["role"] == "user"]
            assert said == acknowledged
            # The bot remembers the conversation too: the next seq follows the history.
            ack, end = await say(ws, "after the restart")
            assert ack["seq"] == history["messages"][-1]["seq"] + 1
            assert end["text"] == "after the restart"


async def test_resume_an_unknown_session_is_an_error_and_the_connection_stays(
    backend: tuple[str, str] | None,
) -> None:
    async with serve_on(backend) as server, json_client(server.url) as ws:
        await expect(ws, "welcome")
        await ws.send(json.dumps({"type": "resume", "session": "nope", "id": "r"}))
        error = await expect(ws, "error")
        assert (error["code"], error["id"]) == ("unknown_session", "r")
        _, end = await say(ws, "still here")
        assert end["text"] == "still here"


async def test_the_brain_keeps_its_context_across_a_resume(
    backend: tuple[str, str] | None,
) -> None:
    def count(message: str, conversation: Conversation) -> str:
        return f"turn {len(conversation.turns) // 2 + 1}"

    async with serve_on(backend, count) as server:
        async with json_client(server.url) as ws:
            session = (await expect(ws, "welcome"))["session"]
            assert [(await say(ws, "x"))[1]["text"] for _ in range(2)] == ["turn 1", "turn 2"]
        async with json_client(server.url) as ws:
            await expect(ws, "welcome")
            await ws.send(json.dumps({"type": "resume", "session": session}))
            await expect(ws, "history")
            assert (await say(ws, "x"))[1]["text"] == "turn 3"


async def test_room_members_see_each_others_messages_and_the_bots_replies(
    backend: tuple[str, str] | None,
) -> None:
    async with serve_on(backend) as server:
        async with (
            json_client(server.url) as ada,
            json_client(server.url) as bob,
            json_client(server.url) as cy,
        ):
            for ws, name in [(ada, "Ada"), (bob, "Bob"), (cy, "Cy")]:
                await expect(ws, "welcome")
                await ws.send(json.dumps({"type": "join", "room": "lab", "name": name}))
                assert (await expect(ws, "history"))["room"] == "lab"
            presence = await expect(ada, "presence")
            assert presence == {
                "type": "presence",
                "room": "lab",
                "event": "join",
                "name": "Ada",
                "members": 1,
                "mine": True,  # Ada's own join (issue 14: the page knows "you" by session)
            }
            await ada.send(json.dumps({"type": "message", "text": "hello room"}))
            ack = await expect(ada, "ack")
            for ws in (bob, cy):
                message = await expect(ws, "message")
                assert message == {
                    "type": "message",
                    "room": "lab",
                    "seq": ack["seq"],
                    "author": "Ada",
                    "text": "hello room",
                }
            for ws in (ada, bob, cy):
                end = await expect(ws, "reply.end")
                assert end["text"] == "hello room"
            await bob.send(json.dumps({"type": "leave"}))
            left = await expect(ada, "presence")
            while left["event"] != "leave":
                left = await expect(ada, "presence")
            assert (left["name"], left["members"]) == ("Bob", 2)


async def test_a_client_that_stops_reading_is_disconnected_and_does_not_slow_the_room(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A chatty brain: 8 MB per reply, more than the kernel buffers for a client that never
    # reads: once they are full, the stuck member's queue fills.
    async def chatty(message: str) -> AsyncIterator[str]:
        for n in range(2000):
            yield f"{n:<4}" * 1000
            await asyncio.sleep(0)

    limits = Limits(send_queue=50)
    # close_timeout: how long the server waits for a closing handshake the stuck client cannot
    # answer before it drops the TCP connection.
    async with serve(chatty, port=0, limits=limits, close_timeout=1) as server:
        stuck = await stuck_client(server.port)
        try:
            async with connect(
                server.url,
                subprotocols=[PROTOCOL],
                proxy=None,
                max_size=None,  # type: ignore[list-item]
            ) as reader:
                await expect(reader, "welcome")
                stuck.write(masked_text_frame(json.dumps({"type": "join", "room": "lab"})))
                await reader.send(json.dumps({"type": "join", "room": "lab"}))
                await expect(reader, "history")
                await reader.send(json.dumps({"type": "message", "text": "go"}))
                end = await expect(reader, "reply.end")
                # The reader got the whole reply while the stuck member's queue overflowed.
                assert end["status"] == "complete"
                assert end["text"] == "".join(f"{n:<4}" * 1000 for n in range(2000))
                # The server let go of the stuck client (it never reads, so it cannot notice).
                closed = await server.log.wait_for("close", client=1, timeout=30)
                assert closed.detail.startswith(("1008", "1006"))
                assert server.connections == 1
        finally:
            stuck.transport.abort()
    assert "disconnecting a client that stopped reading (50 waiting)" in caplog.messages


async def test_a_client_that_disconnects_mid_reply_leaves_no_task_behind() -> None:
    brain = Countdown()
    async with serve(brain, port=0) as server:
        before = len(asyncio.all_tasks())
        ws = await json_client(server.url)
        welcome = await expect(ws, "welcome")
        await ws.send(json.dumps({"type": "message", "text": "count"}))
        await expect(ws, "reply.chunk")
        await ws.close()
        await asyncio.wait_for(brain.released.wait(), 10)
        await server.log.wait_for("close", client=1)
        for _ in range(100):  # let the handler's last await return (bounded)
            if len(asyncio.all_tasks()) <= before:
                break
            await asyncio.sleep(0.01)
        assert len(asyncio.all_tasks()) == before
        assert server.hub is not None
        stored = await server.hub.store.history(welcome["session"])
        assert [(m.role, m.status) for m in stored] == [("user", "complete"), ("bot", "partial")]


async def test_an_idle_connection_holds_no_task_of_the_hub() -> None:
    # An idle connection's tasks are websockets' own (its handler and keepalive, on each side):
    # counted here for a raw websockets server, with the clients in this same loop.
    async def handler(connection: ServerConnection) -> None:
        await connection.send(json.dumps({"type": "hello"}))
        await connection.wait_closed()

    async def tasks_per_connection(url: str, welcome: str, n: int = 10) -> float:
        before = len(asyncio.all_tasks())
        clients = [await json_client(url) for _ in range(n)]
        try:
            for ws in clients:
                assert json.loads(await ws.recv())["type"] == welcome
            return (len(asyncio.all_tasks()) - before) / n
        finally:
            for ws in clients:
                await ws.close()

    async with websockets_serve(
        handler, "127.0.0.1", 0, compression=None, ping_interval=Limits().ping_interval
    ) as raw:
        port = raw.sockets[0].getsockname()[1]
        library = await tasks_per_connection(f"ws://127.0.0.1:{port}/", "hello")
    assert library > 0
    async with serve(port=0) as server:
        # Welcomed, so its session and private channel exist: no outbox sender, no worker.
        assert await tasks_per_connection(server.url, "welcome") == library
        ws = await json_client(server.url)
        await expect(ws, "welcome")
        idle = len(asyncio.all_tasks())
        await say(ws, "hello")
        await say(ws, "again")
        # The channel's worker ends once nothing waits for the bot (bounded wait).
        for _ in range(100):
            if len(asyncio.all_tasks()) <= idle:
                break
            await asyncio.sleep(0.01)
        assert len(asyncio.all_tasks()) == idle
        await ws.close()


async def test_shutdown_mid_reply_sends_1001_and_stores_the_partial_reply(tmp_path: Path) -> None:
    brain = Countdown()
    store = await Store.open(tmp_path / "chat.sqlite3")
    try:
        async with serve(brain, port=0, store=store) as chat:
            ws = await json_client(chat.url)
            welcome = await expect(ws, "welcome")
            await ws.send(json.dumps({"type": "message", "text": "count"}))
            await expect(ws, "reply.chunk")
        # Leaving `async with serve` closed the server: 1001, and the handlers finished.
        await ws.wait_closed()
        assert ws.close_code == 1001
        stored = await store.history(welcome["session"])
        assert [(m.role, m.status) for m in stored] == [("user", "complete"), ("bot", "partial")]
        assert stored[1].text.startswith("200 ")
    finally:
        await store.close()


async def test_a_failing_brain_gives_that_client_an_error_and_the_server_keeps_serving(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def fragile(message: str) -> str:
        if message == "boom":
            raise ValueError("internal detail")
        return message

    async with (
        serve(fragile, port=0) as server,
        json_client(server.url) as ws,
        json_client(server.url) as other,
    ):
        await expect(ws, "welcome")
        await expect(other, "welcome")
        await ws.send(json.dumps({"type": "message", "text": "boom"}))
        error = await expect(ws, "error")
        assert error == {
            "type": "error",
            "code": "brain_failed",
            "message": "Sorry, something went wrong on my side. Please try again.",
        }
        end = await expect(ws, "reply.end")
        assert end["text"] == error["message"]
        assert (await say(other, "fine"))[1]["text"] == "fine"
        assert (await say(ws, "again"))[1]["text"] == "again"
    assert any(r.levelname == "ERROR" and r.exc_info for r in caplog.records)


async def test_an_idle_connection_is_closed_after_the_idle_timeout() -> None:
    async with (
        serve(port=0, limits=Limits(idle_timeout=0.2)) as server,
        json_client(server.url) as ws,
    ):
        await expect(ws, "welcome")
        await ws.wait_closed()
        assert (ws.close_code, ws.close_reason) == (1000, "idle timeout")
        assert (
            str(await server.log.wait_for("close", client=1)) == "client 1   close    idle timeout"
        )


async def test_keepalive_pings_drop_a_peer_that_does_not_answer() -> None:
    # The stuck client never reads, so it never answers a ping.
    limits = Limits(ping_interval=0.1, ping_timeout=0.1)
    async with serve(port=0, limits=limits, close_timeout=0.5) as server:
        stuck = await stuck_client(server.port)
        try:
            closed = await server.log.wait_for("close", client=1, timeout=20)
            assert closed.detail.startswith(("1011", "1006"))
            assert server.connections == 0
        finally:
            stuck.transport.abort()


async def test_the_brains_memory_survives_a_restart(tmp_path: Path) -> None:
    # ELIZA's last reply in the 1966 paper comes from its memory of the third exchange, and
    # from its counter: both must come back from the database after a restart.
    from chatbot.brains.eliza import ElizaBrain
    from tests.test_eliza import CACM_1966

    *before, (last_said, last_reply) = CACM_1966
    async with await Store.open(tmp_path / "chat.sqlite3") as store:
        async with serve(ElizaBrain(), port=0, store=store) as server:
            async with json_client(server.url) as ws:
                session = (await expect(ws, "welcome"))["session"]
                for said, reply in before:
                    assert (await say(ws, said))[1]["text"] == reply
    async with await Store.open(tmp_path / "chat.sqlite3") as store:
        async with serve(ElizaBrain(), port=0, store=store) as server:
            async with json_client(server.url) as ws:
                await expect(ws, "welcome")
                await ws.send(json.dumps({"type": "resume", "session": session}))
                await expect(ws, "history")
                assert (await say(ws, last_said))[1]["text"] == last_reply


def test_the_memory_snapshot_is_the_same_text_for_the_same_memory() -> None:
    # Issue 16: orjson when it can (sorted keys), the standard library for what orjson refuses.
    from chatbot.server.hub import _snapshot

    assert _snapshot({"b": 1, "a": {"y": [1, 2], "x": None}}) == _snapshot(
        {"a": {"x": None, "y": [1, 2]}, "b": 1}
    )
    assert _snapshot({}) == "{}"  # what the hub compares with for a brain without memory
    assert _snapshot({1: "not a string key"}) == '{"1": "not a string key"}'
    assert "frozenset({1})" in _snapshot({"odd": frozenset({1})})  # not JSON: its repr


@pytest.mark.parametrize(("history", "seen"), [(0, ["0", "0", "0"]), (None, ["0", "2", "4"])])
async def test_the_hub_keeps_only_the_turns_its_brain_reads_also_after_a_resume(
    tmp_path: Path, history: int | None, seen: list[str]
) -> None:
    # The store keeps every message whatever the brain reads; memory keeps what it reads.
    db = tmp_path / "chat.sqlite3"
    async with (
        await Store.open(db) as store,
        serve(TurnCounter(history), port=0, store=store) as server,
    ):
        async with json_client(server.url) as ws:
            session = (await receive(ws))["session"]
            replies = []
            for n in range(2):
                await ws.send(json.dumps({"type": "message", "text": "hi", "id": f"m{n}"}))
                replies.append((await expect(ws, "reply.chunk"))["text"])
    async with (
        await Store.open(db) as store,
        serve(TurnCounter(history), port=0, store=store) as server,
    ):
        async with json_client(server.url) as ws:  # after a restart: resume
            await receive(ws)
            await ws.send(json.dumps({"type": "resume", "session": session}))
            stored = (await expect(ws, "history"))["messages"]
            await ws.send(json.dumps({"type": "message", "text": "hi", "id": "m2"}))
            replies.append((await expect(ws, "reply.chunk"))["text"])
    assert replies == seen
    assert [m["role"] for m in stored] == ["user", "bot"] * 2  # the store kept them all


class TextSeen(Brain):
    """Replies with how many turns it was handed and how many characters they hold."""

    name = "text-seen"

    async def stream(self, message: str, conversation: Conversation) -> AsyncIterator[str]:
        yield f"{len(conversation.turns)} {sum(len(turn.text) for turn in conversation.turns)}"


async def test_the_turns_kept_for_a_brain_are_bounded_in_characters_also_after_a_resume(
    tmp_path: Path,
) -> None:
    # Before, 200 turns at most: a client pasting 4,000 characters kept 400,000 in memory (2.4
    # million with the llm brain's replies), and the brain was handed them all every message.
    db, text = tmp_path / "chat.sqlite3", "x" * 4_000
    pairs = HISTORY_CHARS // (len(text) + len("30 60000"))  # the pairs of turns that fit: 15
    seen = []
    async with await Store.open(db) as store, serve(TextSeen(), port=0, store=store) as server:
        async with json_client(server.url) as ws:
            session = (await receive(ws))["session"]
            for n in range(pairs + 3):
                await ws.send(json.dumps({"type": "message", "text": text, "id": f"m{n}"}))
                seen.append((await expect(ws, "reply.end"))["text"])
    async with await Store.open(db) as store, serve(TextSeen(), port=0, store=store) as server:
        async with json_client(server.url) as ws:  # after a restart: the turns read from the store
            await receive(ws)
            await ws.send(json.dumps({"type": "resume", "session": session}))
            await expect(ws, "history")
            await ws.send(json.dumps({"type": "message", "text": "and now?", "id": "last"}))
            seen.append((await expect(ws, "reply.end"))["text"])
    turns, chars = zip(
        *((int(count), int(size)) for count, size in map(str.split, seen)), strict=True
    )
    assert turns[: pairs + 1] == tuple(range(0, 2 * pairs + 1, 2))  # all of them, while they fit
    assert turns[pairs + 1 :] == (2 * pairs,) * 3  # then the newest that fit, in pairs
    assert max(chars) <= HISTORY_CHARS < chars[pairs] + len(text)
