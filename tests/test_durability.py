"""Issue 16: what an acknowledged message survives, per ``--durability`` mode, under load.

Each mode gets the same test: a real ``python -m chatbot`` process, twenty clients sending as fast
as their replies come back, then ``kill -9`` in the middle of it, a restart on the same file, and
every acknowledged message found again through ``resume``. ``process`` (WAL, synchronous=NORMAL)
and ``power`` (synchronous=FULL) both keep that promise; only ``power`` also survives a power cut,
which a test cannot cause (docs/deploy.md has the figures of each).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from chatbot.storage.sqlite import Store
from tests.helpers import chatbot_process
from tests.jsonclient import json_client

CLIENTS = 20
ACKS_BEFORE_THE_KILL = 300  # in all: about 15 per client, far under a history page (200)
NO_RATE_LIMIT = ("--rate", "100000", "--burst", "100000")


async def chat_until_killed(url: str, number: int, acked: dict[str, list[str]]) -> None:
    """Send messages one after the other (each once its reply ended); note every ``ack``."""
    with contextlib.suppress(ConnectionClosed, OSError):
        async with json_client(url) as client:
            said = acked.setdefault(client.session, [])
            for n in range(1_000_000):
                await client.send({"type": "message", "text": f"client {number} message {n}"})
                while True:
                    message = json.loads(await client.connection.recv())
                    if message["type"] == "ack":
                        said.append(f"client {number} message {n}")
                    elif message["type"] == "reply.end":
                        break
                    else:
                        assert message["type"] in ("reply.start", "reply.chunk"), message


async def history_of(url: str, session: str) -> list[dict[str, Any]]:
    async with json_client(url) as client:
        await client.send({"type": "resume", "session": session})
        history = await client.expect("history")
        return list(history["messages"])


@pytest.mark.parametrize("durability", ["process", "power"])
async def test_every_acknowledged_message_survives_kill_9_under_load(
    tmp_path: Path, durability: str
) -> None:
    db = str(tmp_path / "chat.sqlite3")
    options = ("--brain", "echo", "--db", db, "--durability", durability, *NO_RATE_LIMIT)
    acked: dict[str, list[str]] = {}
    async with chatbot_process(*options) as first:
        clients = [
            asyncio.create_task(chat_until_killed(first.url, n, acked)) for n in range(CLIENTS)
        ]
        async with asyncio.timeout(60):
            while sum(map(len, acked.values())) < ACKS_BEFORE_THE_KILL:
                await asyncio.sleep(0.01)
                assert not any(task.done() for task in clients), "a client stopped early"
        # No goodbye: the store's thread may be in the middle of a group commit.
        first.process.send_signal(signal.SIGKILL)
        assert await first.process.wait() == -signal.SIGKILL
        await asyncio.gather(*clients)  # each ends when its connection drops
    assert sum(map(len, acked.values())) >= ACKS_BEFORE_THE_KILL
    async with chatbot_process(*options) as second:
        for session, said in acked.items():
            history = await history_of(second.url, session)
            stored = [m["text"] for m in history if m["role"] == "user"]
            # Everything acknowledged, in order; at most one more (stored, its ack unread).
            assert stored[: len(said)] == said, f"{durability}: an acknowledged message was lost"
            assert len(stored) <= len(said) + 1


@pytest.mark.parametrize(("durability", "expected"), [("process", 1), ("power", 2)])
async def test_each_durability_is_its_synchronous_setting(
    tmp_path: Path, durability: str, expected: int
) -> None:
    # PRAGMA synchronous: 1 is NORMAL (no fsync per commit), 2 is FULL (an fsync per commit).
    async with await Store.open(tmp_path / "chat.db", durability=durability) as store:
        setting = await store._submit(
            lambda connection: connection.execute("PRAGMA synchronous").fetchone()[0], write=False
        )
    assert setting == expected


async def test_an_unknown_durability_is_refused_in_a_sentence(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="durability must be 'process' or 'power', got 'disk'"):
        await Store.open(tmp_path / "chat.db", durability="disk")


@pytest.mark.parametrize("durability", ["process", "power"])
async def test_a_kill_mid_reply_leaves_the_message_without_its_reply(
    tmp_path: Path, durability: str
) -> None:
    # The rule in docs/protocol.md: a reply is stored when it ends (or, on a clean shutdown,
    # as partial); a process killed mid-reply leaves the acknowledged message and no reply.
    db = str(tmp_path / "chat.sqlite3")
    options = ("--db", db, "--durability", durability)
    async with chatbot_process("--brain", "tests.helpers:slow_words", *options) as first:
        async with json_client(first.url) as client:
            ack, _end = await client.say("before")
            await client.send({"type": "message", "text": "cut short"})
            await client.expect("ack")
            await client.expect("reply.start")
            await client.expect("reply.chunk")  # the reply is streaming: kill the process now
            first.process.send_signal(signal.SIGKILL)
            assert await first.process.wait() == -signal.SIGKILL
            session = client.session
    async with chatbot_process("--brain", "echo", *options) as second:
        history = await history_of(second.url, session)
    said = [(m["role"], m["text"], m["status"]) for m in history]
    assert said == [
        ("user", "before", "complete"),
        ("bot", "".join(f"before {n} " for n in range(10)), "complete"),
        ("user", "cut short", "complete"),
    ]
    assert history[0]["seq"] == ack["seq"]
