"""Several server processes as one chat service, on a real Redis (notebook 08).

Each test starts its own ``python -m chatbot --redis ...`` processes on port 0 and talks to them
over real connections on 127.0.0.1. The behaviour tests of tests/test_store.py and
tests/test_hub.py run on both backends too (their ``open_store`` and ``backend`` fixtures).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from chatbot.storage.base import StoreError
from chatbot.storage.redis import PUBLISH_QUEUE_CHARS, RedisFanout, RedisStore, display_url
from tests.helpers import ServerProcess, chatbot_process, run_chatbot
from tests.redis_server import RestartableRedis, free_port, serve_on

PROTOCOL = "chatbot.v1"
WAIT = 10.0  # seconds for one expected message: ample on a loaded CI machine


def json_client(url: str) -> connect:
    return connect(url, subprotocols=[PROTOCOL], proxy=None, open_timeout=30)  # type: ignore[list-item]


async def expect(ws: ClientConnection, kind: str, **fields: Any) -> dict[str, Any]:
    """Receive until a message of ``kind`` (with these ``fields``) arrives; bounded."""
    async with asyncio.timeout(WAIT):
        while True:
            message = json.loads(await ws.recv())
            if message["type"] == kind and all(message.get(k) == v for k, v in fields.items()):
                return dict(message)


async def send(ws: ClientConnection, **message: Any) -> None:
    await ws.send(json.dumps(message))


def two_servers(redis: str, brain: str = "echo") -> tuple[Any, Any]:
    """Two ``python -m chatbot`` processes on one Redis: by ``--redis URL``, by ``$CHATBOT_REDIS``.

    They use the default key prefix: the tests keep apart by their room names (each with a
    random part) and by their sessions' random ids.
    """
    args = ("--brain", brain, "--log-level", "warning")
    return (
        chatbot_process("--redis", redis, *args),
        chatbot_process(*args, env={"CHATBOT_REDIS": redis}),  # a password stays out of argv
    )


@contextlib.asynccontextmanager
async def two_fanouts(url: str, prefix: str) -> AsyncIterator[tuple[RedisFanout, RedisFanout]]:
    """The fan-outs of two processes on one Redis, in miniature."""
    first = await RedisFanout.open(url, prefix=prefix)
    try:
        second = await RedisFanout.open(url, prefix=prefix)
        try:
            yield first, second
        finally:
            await second.close()
    finally:
        await first.close()


async def join(url: str, room: str, name: str) -> tuple[ClientConnection, dict[str, Any]]:
    ws = await json_client(url)
    welcome = await expect(ws, "welcome")
    await send(ws, type="join", room=room, name=name)
    await expect(ws, "history", room=room)
    return ws, welcome


async def test_a_message_through_one_process_reaches_a_client_of_the_other(redis_url: str) -> None:
    first, second = two_servers(redis_url, "tests.helpers:count_turns")
    room = f"lab-{secrets.token_hex(4)}"
    async with first as a, second as b:
        ada, welcome_a = await join(a.url, room, "Ada")
        bob, welcome_b = await join(b.url, room, "Bob")
        async with ada, bob:
            # Each process's first client, but guests are numbered across processes.
            assert welcome_a["name"] != welcome_b["name"]
            # Presence counts the room across processes.
            assert (await expect(ada, "presence", name="Bob"))["members"] == 2
            await send(ada, type="message", text="hello from A", id="m1")
            ack = await expect(ada, "ack", id="m1")
            assert await expect(bob, "message") == {
                "type": "message",
                "room": room,
                "seq": ack["seq"],
                "author": "Ada",
                "text": "hello from A",
            }
            # Process A answers, and the reply streams to B's client too.
            for ws in (ada, bob):
                end = await expect(ws, "reply.end", reply=f"r{ack['seq']}")
                assert end["text"] == "turn 1"
            # Process B answers Bob; its brain sees the turns that A stored.
            await send(bob, type="message", text="hello from B", id="m2")
            ack = await expect(bob, "ack", id="m2")
            assert (await expect(ada, "message"))["text"] == "hello from B"
            for ws in (ada, bob):
                end = await expect(ws, "reply.end", reply=f"r{ack['seq']}")
                assert end["text"] == "turn 2"
            # Typing reaches the other process, and skips the sender.
            await send(bob, type="typing")
            assert (await expect(ada, "typing"))["name"] == "Bob"
            await send(bob, type="leave")
            left = await expect(ada, "presence", event="leave")
            assert (left["name"], left["members"]) == ("Bob", 1)


async def test_members_who_leave_together_leave_no_head_count_behind(
    redis_url: str, redis_prefix: str
) -> None:
    # Members leaving at the same moment each counted the others still there (the count was
    # read before each one's Redis calls, the member taken out after): Redis kept this process's
    # count of an empty room at 2, and every other process counted two ghosts in it.
    redis = (redis_url, redis_prefix)
    async with serve_on(redis) as a, serve_on(redis) as b:
        eve, _ = await join(b.url, "lab", "Eve")
        async with eve:
            members = [(await join(a.url, "lab", name))[0] for name in ("Ada", "Bob", "Cy")]
            await asyncio.gather(*(ws.close() for ws in members))
            left = [await expect(eve, "presence", event="leave") for _ in members]
            # Counted one after another: the last of them to go leaves Eve alone.
            assert sorted(frame["members"] for frame in left) == [1, 2, 3]
            dee, _ = await join(b.url, "lab", "Dee")
            async with dee:
                assert (await expect(dee, "presence", name="Dee"))["members"] == 2
        async with aioredis.Redis.from_url(redis_url, decode_responses=True) as counts:
            assert a.hub.fanout.id not in await counts.hgetall(f"{redis_prefix}members:room:lab")
        assert "room:lab" not in a.hub.fanout._rooms  # nothing of A's left to clean up at close


async def test_a_session_resumed_on_the_other_process_shows_its_history(redis_url: str) -> None:
    first, second = two_servers(redis_url, "tests.helpers:count_turns")
    async with first as a, second as b:
        async with json_client(a.url) as ws:
            session = (await expect(ws, "welcome"))["session"]
            for n in range(3):
                await send(ws, type="message", text=f"message {n}")
                await expect(ws, "reply.end")
        async with json_client(b.url) as ws:
            await expect(ws, "welcome")
            await send(ws, type="resume", session=session)
            history = await expect(ws, "history")
            assert [(m["seq"], m["role"], m["text"]) for m in history["messages"]] == [
                (1, "user", "message 0"),
                (2, "bot", "turn 1"),
                (3, "user", "message 1"),
                (4, "bot", "turn 2"),
                (5, "user", "message 2"),
                (6, "bot", "turn 3"),
            ]
            await send(ws, type="message", text="on B", id="b")
            assert (await expect(ws, "ack", id="b"))["seq"] == 7
            assert (await expect(ws, "reply.end"))["text"] == "turn 4"


async def resume_elsewhere(
    server: ServerProcess, session: str, room: str
) -> tuple[ClientConnection, list[dict[str, Any]]]:
    """Connect to ``server``, resume ``session``; return the connection and the room's history."""
    ws = await json_client(server.url)
    await expect(ws, "welcome")
    await send(ws, type="resume", session=session)
    await expect(ws, "history", room=None)  # the session's own conversation
    history = await expect(ws, "history", room=room)  # then the room it was in
    return ws, history["messages"]


async def test_a_process_killed_mid_conversation_loses_nothing_acknowledged(redis_url: str) -> None:
    first, second = two_servers(redis_url, "tests.helpers:slow_words")
    room = f"kill-{secrets.token_hex(4)}"
    async with first as a, second as b:
        ada, welcome = await join(a.url, room, "Ada")
        acknowledged = []
        for n in range(4):
            await send(ada, type="message", text=f"ada {n}", id=f"m{n}")
            acknowledged.append((await expect(ada, "ack", id=f"m{n}"))["seq"])
        await expect(ada, "reply.chunk")  # A is streaming a reply...
        a.process.kill()  # ...and dies, with no time to clean up
        assert await a.process.wait() == -signal.SIGKILL
        with pytest.raises(ConnectionClosed):
            await expect(ada, "never")
        ws, messages = await resume_elsewhere(b, welcome["session"], room)
        async with ws:
            user_seqs = [m["seq"] for m in messages if m["role"] == "user"]
            assert user_seqs == acknowledged
            await send(ws, type="message", text="after the crash", id="later")
            later = await expect(ws, "ack", id="later")
            assert later["seq"] > max(m["seq"] for m in messages)


async def test_sigterm_closes_with_1001_and_the_client_resumes_on_the_other_process(
    redis_url: str,
) -> None:
    first, second = two_servers(redis_url)
    room = f"restart-{secrets.token_hex(4)}"
    async with first as a, second as b:
        ada, welcome = await join(a.url, room, "Ada")
        bob, _ = await join(b.url, room, "Bob")
        async with bob:
            await send(ada, type="message", text="before the restart", id="m")
            ack = await expect(ada, "ack", id="m")
            await expect(bob, "reply.end")
            a.process.send_signal(signal.SIGTERM)  # a rolling restart takes A down
            with pytest.raises(ConnectionClosed) as closed:
                await expect(ada, "never")
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
            assert await a.process.wait() == 0
            # B's client saw Ada leave, as for any disconnect; the room counts Bob alone.
            left = await expect(bob, "presence", event="leave")
            assert (left["name"], left["members"]) == ("Ada", 1)
            ws, messages = await resume_elsewhere(b, welcome["session"], room)
            async with ws:
                assert ack["seq"] in [m["seq"] for m in messages]
                back = await expect(bob, "presence", event="join")
                assert (back["name"], back["members"]) == ("Ada", 2)


async def test_a_crashed_process_stops_counting_once_its_heartbeat_expires(
    redis_url: str, redis_prefix: str
) -> None:
    async with two_fanouts(redis_url, redis_prefix) as (first, second):
        assert await first.members("room:lab", 2) == 2
        assert await second.members("room:lab", 1) == 3
        # What the end of a crashed process's heartbeat looks like: its key is gone.
        await second._redis.delete(f"{redis_prefix}process:{first.id}")
        assert await second.members("room:lab", 1) == 1


async def test_a_name_taken_on_one_process_is_taken_on_the_other(redis_url: str) -> None:
    first, second = two_servers(redis_url)
    room = f"lab-{secrets.token_hex(4)}"
    async with first as a, second as b:
        ada, _ = await join(a.url, room, "Ada")
        bob, _ = await join(b.url, room, "Bob")
        async with ada, bob:
            await send(bob, type="join", room=room, name="ADA", id="j1")
            error = await expect(bob, "error", id="j1")
            assert error["code"] == "name_taken", error
            await send(ada, type="leave")
            await expect(bob, "presence", event="leave", name="Ada")
            # Free once its holder has left the room.
            await send(bob, type="join", room=room, name="ADA", id="j2")
            async with asyncio.timeout(WAIT):  # first the room hears that Bob left
                while (frame := json.loads(await bob.recv()))["type"] not in ("history", "error"):
                    pass
            assert (frame["type"], frame["room"]) == ("history", room), frame


async def test_a_name_is_held_by_one_session_until_it_lets_go_or_its_process_dies(
    redis_url: str, redis_prefix: str
) -> None:
    async with (
        two_fanouts(redis_url, redis_prefix) as (first, second),
        two_fanouts(redis_url, redis_prefix) as (third, _),
    ):
        assert await first.claim("lab", "Ada", "s1")
        assert await first.claim("lab", "ADA", "s1")  # the same session: another tab
        assert await second.claim("lab", "ada", "s1")  # the same session, another process
        assert not await first.claim("lab", "Ada", "s2")
        await second.release("lab", "Ada", "s1")  # the tab on the second process left...
        assert not await second.claim("lab", "Ada", "s2")  # ...the one on the first has it still
        await second.release("lab", "Ada", "s2")  # not the holder: nothing changes
        assert not await second.claim("lab", "Ada", "s2")
        await first.release("lab", "Ada", "s1")
        assert await first.claim("lab", "Ada", "s2")  # free once every tab of s1 let go
        assert not await second.claim("lab", "Ada", "s3")
        # What the end of a crashed process's heartbeat looks like: its key is gone.
        await second._redis.delete(f"{redis_prefix}process:{first.id}")
        assert await second.claim("lab", "Ada", "s3")
        names = f"{redis_prefix}names:lab"
        assert await second._redis.hget(names, "ada") == f"{second.id} s3"
        # A session on two processes, one of which dies: the other still holds the name.
        assert await second.claim("lab", "Bob", "s4")
        assert await third.claim("lab", "Bob", "s4")
        assert await first._redis.hget(names, "bob") == f"{second.id},{third.id} s4"
        await first._redis.delete(f"{redis_prefix}process:{second.id}")
        assert not await first.claim("lab", "bob", "s5")  # the third still has it
        await third.release("lab", "Bob", "s4")
        assert await first.claim("lab", "bob", "s5")  # the second, without a heartbeat, has not
        assert await first._redis.hget(names, "bob") == f"{first.id} s5"


async def test_frames_waiting_for_redis_are_bounded_in_characters_too(
    redis_url: str, redis_prefix: str
) -> None:
    # The queue of frames to publish was bounded in frames only: 10,000 long replies waiting
    # for a slow Redis held 165 MB. Now in characters too (PUBLISH_QUEUE_CHARS).
    async with two_fanouts(redis_url, redis_prefix) as (first, second):
        arrived: list[str] = []
        all_in = asyncio.Event()

        def deliver(conversation: str, text: str) -> None:
            arrived.append(text)
            if len(arrived) == fits:
                all_in.set()

        second.bind(deliver, lambda conversation: False)
        await second.subscribe("room:lab")
        frame = "x" * 100_000
        fits = PUBLISH_QUEUE_CHARS // len(f"{first.id}\n{frame}")
        for _ in range(100):  # no await between them: none is published yet
            first.publish("room:lab", frame)
        assert (first._outgoing.qsize(), first._dropped) == (fits, 100 - fits)
        async with asyncio.timeout(WAIT):
            await all_in.wait()
        assert arrived == [frame] * fits
        assert first._queued == 0  # every character counted in was counted out


async def test_redis_that_does_not_answer_is_a_clear_error() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    with pytest.raises(StoreError) as info:
        await RedisStore.open(url)
    assert str(info.value).startswith(f"cannot reach Redis at {url}: ")
    assert str(info.value).endswith("; start redis-server there, or pass the URL of a running one")
    with pytest.raises(StoreError) as info:
        await RedisStore.open("http://127.0.0.1:6379/")
    assert str(info.value) == (
        "expected a Redis URL like redis://127.0.0.1:6379/0, got 'http://127.0.0.1:6379/'; "
        "see docs/deploy.md"
    )


async def test_the_command_line_names_a_redis_it_cannot_reach() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    status, _, err = await run_chatbot("--port", "0", "--redis", url)
    assert status == 1
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"error: cannot reach Redis at {url}: ")


async def test_a_closed_redis_store_says_so(redis_url: str, redis_prefix: str) -> None:
    store = await RedisStore.open(redis_url, prefix=redis_prefix)
    await store.append("c", "user", "Ada", "kept")
    await store.close()
    await store.close()  # idempotent
    with pytest.raises(StoreError) as info:
        await store.history("c")
    assert str(info.value) == (
        f'the store "{redis_url}" is closed; open it again with `await RedisStore.open(url)`'
    )
    async with await RedisStore.open(redis_url, prefix=redis_prefix) as reopened:
        assert [m.text for m in await reopened.history("c")] == ["kept"]


def test_urls_are_shown_without_their_password() -> None:
    assert display_url("redis://:s3cret@127.0.0.1:6379/0") == "redis://:***@127.0.0.1:6379/0"
    assert display_url("redis://ada:s3cret@host/1") == "redis://ada:***@host/1"
    assert display_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


async def subscribers(url: str, channel: str) -> int:
    client = aioredis.Redis.from_url(url, decode_responses=True)
    try:
        return int(dict(await client.pubsub_numsub(channel))[channel])
    finally:
        await client.aclose()


async def test_while_redis_is_down_messages_are_refused_and_afterwards_the_room_works_again(
    tmp_path: Path,
) -> None:
    # A Redis of this test's own: it is stopped, then started again on the same port.
    with RestartableRedis(tmp_path) as redis:
        backend = (redis.url, "outage:")
        async with serve_on(backend) as a, serve_on(backend) as b:
            ada, _ = await join(a.url, "lab", "Ada")
            bob, _ = await join(b.url, "lab", "Bob")
            async with ada, bob:
                await send(ada, type="message", text="before", id="m1")
                await expect(ada, "ack", id="m1")
                assert (await expect(bob, "message"))["text"] == "before"

                redis.stop()
                await send(ada, type="message", text="during", id="m2")
                assert await expect(ada, "error", id="m2") == {
                    "type": "error",
                    "code": "store_failed",
                    "message": "Your message was not stored: the server cannot reach its "
                    "storage right now. Send it again in a moment.",
                    "id": "m2",
                }

                redis.restart()
                # Both processes subscribe again by themselves (redis-py reconnects): wait for
                # it, polling Redis, at most 100 times 0.1 s.
                for _ in range(100):
                    if await subscribers(redis.url, "outage:fanout:room:lab") == 2:
                        break
                    await asyncio.sleep(0.1)
                else:
                    raise AssertionError("the processes did not subscribe again within 10 s")
                await send(ada, type="message", text="after", id="m3")
                await expect(ada, "ack", id="m3")
                assert (await expect(bob, "message"))["text"] == "after"


async def test_readyz_says_not_ready_while_redis_is_down_and_healthz_stays_ok(
    tmp_path: Path,
) -> None:
    # Liveness and readiness part ways: restarting a process would not bring Redis back, but a
    # load balancer should send no new clients to it until Redis answers again.
    with RestartableRedis(tmp_path) as redis:
        async with (
            serve_on((redis.url, "ready:")) as server,
            httpx.AsyncClient(trust_env=False, timeout=WAIT) as http,
        ):
            readyz, healthz = server.http_url + "readyz", server.http_url + "healthz"
            ready = await http.get(readyz)
            assert (ready.status_code, ready.text) == (200, "ready\n")

            redis.stop()
            down = await http.get(readyz)
            assert down.status_code == 503
            assert down.text == "not ready: the store does not answer (the server's log says why)\n"
            health = await http.get(healthz)
            assert (health.status_code, health.text) == (200, "ok\n")

            redis.restart()
            # The store's connection to the old Redis is gone; the next ping connects again.
            # Poll, at most 100 times 0.1 s.
            for _ in range(100):
                if (ready := await http.get(readyz)).status_code == 200:
                    break
                await asyncio.sleep(0.1)
            assert (ready.status_code, ready.text) == (200, "ready\n")


async def test_stop_through_one_process_stops_the_reply_the_other_writes(redis_url: str) -> None:
    first, second = two_servers(redis_url, "tests.helpers:long_count")
    room = f"stop-{secrets.token_hex(4)}"
    async with first as a, second as b:
        ada, _ = await join(a.url, room, "Ada")
        bob, _ = await join(b.url, room, "Bob")
        async with ada, bob:
            await send(ada, type="message", text="count", id="m")
            await expect(ada, "ack", id="m")
            await expect(bob, "reply.chunk")  # A writes the reply; Bob, on B, sees it stream
            await send(bob, type="stop", id="s1")
            for ws in (ada, bob):
                end = await expect(ws, "reply.end")
                assert end["status"] == "stopped" and not end["text"].endswith("500 ")
            # Nothing streams anywhere now: B asks A, A answers no, and Bob hears so at once.
            await send(bob, type="stop", id="s2")
            error = await expect(bob, "error", id="s2")
            assert (error["code"], error["message"]) == (
                "nothing_to_stop",
                "No reply is being written.",
            )


async def test_ping_fails_while_redis_refuses_writes(tmp_path: Path) -> None:
    # A PING answers while every write fails (out of memory, no replica to write to): the
    # store's ping writes a key with a TTL, so /readyz says 503 then.
    with RestartableRedis(tmp_path) as redis:
        async with (
            aioredis.Redis.from_url(redis.url, decode_responses=True) as admin,
            await RedisStore.open(redis.url) as store,
        ):
            await store.ping()
            await admin.config_set("maxmemory-policy", "noeviction")
            await admin.config_set("maxmemory", "1")
            with pytest.raises(StoreError) as info:
                await store.ping()
            assert str(info.value).startswith(
                f'the store "{redis.url}" failed: command not allowed when used memory > '
            )
            await admin.config_set("maxmemory", "0")
            await admin.config_set("min-replicas-to-write", "1")
            with pytest.raises(StoreError) as info:
                await store.ping()
            assert "NOREPLICAS" in str(info.value) or "enough good replicas" in str(info.value)
            await admin.config_set("min-replicas-to-write", "0")
            await store.ping()


async def test_every_key_of_a_session_has_a_ttl_that_a_use_renews(
    redis_url: str, redis_prefix: str
) -> None:
    async with (
        aioredis.Redis.from_url(redis_url, decode_responses=True) as redis,
        await RedisStore.open(redis_url, prefix=redis_prefix, session_ttl=1000) as store,
    ):
        session = await store.create_session("Ada")
        await store.append(session.id, "user", "Ada", "hi")
        await store.append("room:lobby", "user", "Ada", "hi")
        await store.ping()
        keys = [key async for key in redis.scan_iter(match=f"{redis_prefix}*")]
        assert len(keys) == 6  # session, seq and messages; the room's seq and messages; ping
        assert [0 < await redis.ttl(key) <= 1000 for key in keys] == [True] * 6
        kinds = ("session", "seq", "messages")
        session_keys = [f"{redis_prefix}{kind}:{session.id}" for kind in kinds]
        for key in session_keys:
            await redis.expire(key, 5)
        assert await store.get_session(session.id) is not None  # a resume renews all three
        assert [await redis.ttl(key) > 5 for key in session_keys] == [True] * 3


async def test_expire_gives_a_ttl_to_keys_written_before_sessions_expired(
    redis_url: str, redis_prefix: str
) -> None:
    async with (
        aioredis.Redis.from_url(redis_url, decode_responses=True) as redis,
        await RedisStore.open(redis_url, prefix=redis_prefix, session_ttl=1000) as store,
    ):
        # As an older chatbot left them: no TTL (-1).
        await redis.hset(f"{redis_prefix}session:old", mapping={"name": "Ada", "state": "{}"})
        await redis.set(f"{redis_prefix}seq:room:old", 3)
        await redis.xadd(f"{redis_prefix}messages:room:old", {"m": "[]"}, id="0-3")
        assert await store.expire() == 3
        assert await store.expire() == 0
        async for key in redis.scan_iter(match=f"{redis_prefix}*"):
            assert 0 < await redis.ttl(key) <= 1000
