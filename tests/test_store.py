"""The session store: round trips, ordering, group commit, a free event loop, and durability."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import sys
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from chatbot.storage.base import StoreError
from chatbot.storage.redis import RedisStore
from chatbot.storage.sqlite import SCHEMA_VERSION, Store
from tests.helpers import ROOT

# A child process that appends from four concurrent writers and prints each seq once `append`
# has returned, i.e. once the server would have acknowledged the message.
WRITER_PROCESS = """
import asyncio, sys
from chatbot.storage.sqlite import Store

async def writer(store, n):
    for i in range(100_000):
        stored = await store.append("kill", "user", f"w{n}", f"{n}-{i}")
        print(stored.seq, stored.text, flush=True)

async def main(path):
    store = await Store.open(path)
    await asyncio.gather(*(writer(store, n) for n in range(4)))

asyncio.run(main(sys.argv[1]))
"""


OpenStore = Callable[..., Awaitable[Any]]


def store_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("chatbot store")]


@pytest.fixture(params=["sqlite", "redis"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> OpenStore:
    """Opens a store of either backend: the tests that use it hold for both (notebook 08)."""
    if request.param == "sqlite":
        return lambda **options: Store.open(tmp_path / "chat.db", **options)
    url, prefix = request.getfixturevalue("redis_url"), request.getfixturevalue("redis_prefix")
    return lambda **options: RedisStore.open(url, prefix=prefix, **options)


@pytest.fixture
def newer_file(tmp_path: Path) -> Path:
    """A store file that claims a schema version from the future."""
    path = tmp_path / "future.db"
    with sqlite3.connect(path) as connection:
        connection.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    connection.close()
    return path


async def test_append_and_history_round_trip(open_store: OpenStore) -> None:
    async with await open_store() as store:
        first = await store.append("s1", "user", "Ada", "Hello, ünïcödé ✓")
        second = await store.append("s1", "bot", "echo", "Hello", "stopped")
        assert (first.conversation, first.seq, first.role, first.author) == ("s1", 1, "user", "Ada")
        assert (first.text, first.status) == ("Hello, ünïcödé ✓", "complete")
        assert (second.seq, second.status) == (2, "stopped")
        assert first.time <= second.time
        assert await store.history("s1") == [first, second]
        assert await store.history("nobody") == []


async def test_seq_counts_per_conversation(open_store: OpenStore) -> None:
    async with await open_store() as store:
        seqs = [
            (await store.append(conversation, "user", "Ada", "hi")).seq
            for conversation in ["a", "b", "a", "room:lobby", "a", "b"]
        ]
        assert seqs == [1, 1, 2, 1, 3, 2]


async def test_history_limit_returns_the_newest_oldest_first(open_store: OpenStore) -> None:
    async with await open_store() as store:
        for i in range(10):
            await store.append("c", "user", "Ada", f"m{i}")
        newest = await store.history("c", limit=3)
        assert [(m.seq, m.text) for m in newest] == [(8, "m7"), (9, "m8"), (10, "m9")]
        assert await store.history("c", limit=0) == []
        assert len(await store.history("c", limit=1000)) == 10
        with pytest.raises(ValueError) as info:
            await store.history("c", limit=-1)
        assert str(info.value) == "limit must be 0 or more messages, got -1"


async def test_history_sees_writes_submitted_before_it(open_store: OpenStore) -> None:
    async with await open_store() as store:
        # Neither awaited before the other starts: the queue order decides, and it is call order.
        stored, history = await asyncio.gather(
            store.append("c", "user", "Ada", "first"), store.history("c")
        )
        assert history == [stored]


async def test_sessions_create_get_and_save(open_store: OpenStore) -> None:
    async with await open_store() as store:
        created = await store.create_session("guest-1")
        assert (created.name, created.room, created.state) == ("guest-1", None, {})
        assert len(created.id) >= 22  # token_urlsafe(16): 128 random bits
        assert await store.get_session(created.id) == created
        assert await store.get_session("no-such-id") is None
        other = await store.create_session("guest-2")
        assert other.id != created.id

        state = {"eliza": {"memory": ["ta mère", "I am sad"], "turn": 3, "fine": True}}
        await store.save_session(created.id, state=state, room="lobby", name="Ada")
        saved = await store.get_session(created.id)
        assert saved is not None
        assert (saved.name, saved.room, saved.state) == ("Ada", "lobby", state)
        assert saved.created == created.created

        await store.save_session(created.id, name="Ada L.")  # the rest stays as it was
        await store.save_session(created.id)  # nothing to change: nothing to do
        saved = await store.get_session(created.id)
        assert saved is not None
        assert (saved.name, saved.room, saved.state) == ("Ada L.", "lobby", state)

        await store.save_session(created.id, room=None)  # None leaves the room
        saved = await store.get_session(created.id)
        assert saved is not None
        assert (saved.name, saved.room, saved.state) == ("Ada L.", None, state)


async def test_save_session_snapshots_the_state_when_called(open_store: OpenStore) -> None:
    async with await open_store() as store:
        session = await store.create_session("Ada")
        state = {"count": 1}

        async def brain_goes_on() -> None:
            state["count"] = 2  # while the write waits for the disk

        await asyncio.gather(store.save_session(session.id, state=state), brain_goes_on())
        saved = await store.get_session(session.id)
        assert saved is not None and saved.state == {"count": 1}


async def test_invalid_arguments_get_clear_errors(open_store: OpenStore) -> None:
    async with await open_store() as store:
        with pytest.raises(ValueError) as info:
            await store.append("c", "assistant", "Ada", "hi")
        assert str(info.value) == "role must be 'user' or 'bot', got 'assistant'"
        with pytest.raises(ValueError) as info:
            await store.append("c", "bot", "echo", "hi", "done")
        assert str(info.value) == "status must be 'complete', 'stopped' or 'partial', got 'done'"
        session = await store.create_session("Ada")
        with pytest.raises(TypeError) as type_info:
            await store.save_session(session.id, state={"eliza": {"seen": {"hello"}}})
        assert str(type_info.value) == (
            "state must be JSON-serialisable (dict, list, str, int, float, bool, None), but "
            "state['eliza']['seen'] is a set; convert it (a set to a list, say) first"
        )
        with pytest.raises(StoreError) as store_info:
            await store.save_session("nope", name="Ada")
        assert str(store_info.value) == (
            "no session 'nope' in the store; create it with create_session()"
        )
        with pytest.raises(ValueError) as info:
            await open_store(batch_limit=0)
        assert str(info.value) == "batch_limit must be a positive integer, got 0"
        assert await store.history("c") == []  # nothing invalid was stored


async def test_ping_answers_while_the_store_is_open_and_fails_once_closed(
    open_store: OpenStore,
) -> None:
    store = await open_store()
    async with store:
        await store.append("c", "user", "Ada", "hi")
        assert await store.ping() is None
    with pytest.raises(StoreError) as info:
        await store.ping()
    assert str(info.value).startswith(f'the store "{store.path}" is closed; open it again with ')


async def test_a_failing_write_fails_alone_in_its_batch(
    open_store: OpenStore,
) -> None:
    async with await open_store() as store:
        results = await asyncio.gather(
            store.append("c", "user", "Ada", "before"),
            store.save_session("nope", name="Ada"),
            store.append("c", "user", "Ada", "after"),
            return_exceptions=True,
        )
        assert isinstance(results[1], StoreError)
        assert [m.text for m in await store.history("c")] == ["before", "after"]
        # The batch ran again without the failing write: no seq was lost to the first attempt.
        assert [m.seq for m in await store.history("c")] == [1, 2]
        assert [r.seq for r in results if not isinstance(r, BaseException | None)] == [1, 2]


async def test_another_writer_on_the_same_file_does_not_break_seq(tmp_path: Path) -> None:
    # A store remembers each conversation's last seq; when another writer (a second store, a
    # notebook peeking at the server's file) appended meanwhile, it reads the table again.
    path = tmp_path / "chat.db"
    async with await Store.open(path) as first, await Store.open(path) as second:
        assert (await first.append("c", "user", "Ada", "one")).seq == 1
        assert (await second.append("c", "user", "Bob", "two")).seq == 2
        assert (await first.append("c", "user", "Ada", "three")).seq == 3
        assert [(m.seq, m.text) for m in await second.history("c")] == [
            (1, "one"),
            (2, "two"),
            (3, "three"),
        ]


async def test_two_hundred_concurrent_appends_share_few_commits(tmp_path: Path) -> None:
    async with await Store.open(tmp_path / "chat.db") as store:
        before = store.commits
        stored = await asyncio.gather(
            *(store.append("room:lobby", "user", f"guest-{i}", f"m{i}") for i in range(200))
        )
        commits = store.commits - before
        # Distinct, increasing, and in the order the appends were called.
        assert [m.seq for m in stored] == list(range(1, 201))
        assert [m.text for m in stored] == [f"m{i}" for i in range(200)]
        assert [m.seq for m in await store.history("room:lobby")] == list(range(1, 201))
        assert 1 <= commits <= 20, f"{commits} commits for 200 appends: no group commit?"


async def test_batch_limit_bounds_a_commit(tmp_path: Path) -> None:
    async with await Store.open(tmp_path / "chat.db", batch_limit=1) as store:
        before = store.commits
        await asyncio.gather(*(store.append("c", "user", "Ada", f"m{i}") for i in range(20)))
        assert store.commits - before == 20


async def test_appends_never_block_the_event_loop(tmp_path: Path) -> None:
    # Event-based, no clock: another connection holds SQLite's write lock, so the store's
    # writes must wait for it. If an append waited on the event loop, this coroutine could not
    # run again until that append had given up; it runs at once, sees every append still
    # pending, and only then lets the lock go.
    path = tmp_path / "chat.db"
    async with await Store.open(path) as store:
        await store.append("c0", "user", "Ada", "before the lock")
        other = sqlite3.connect(path, check_same_thread=False)
        try:
            other.execute("BEGIN IMMEDIATE")  # the write lock, held by another connection
            pending = [
                asyncio.create_task(store.append(f"c{n}", "user", "Ada", f"m{n}"))
                for n in range(20)
            ]
            for _ in range(10):  # the appends start and hand their work to the store's thread
                await asyncio.sleep(0)
            assert not any(task.done() for task in pending)  # waiting, and the loop runs
        finally:
            other.rollback()
            other.close()
        await asyncio.gather(*pending)
        assert [len(await store.history(f"c{n}")) for n in range(1, 20)] == [1] * 19


async def test_acknowledged_messages_survive_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "chat.db"
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        WRITER_PROCESS,
        str(path),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert child.stdout is not None
        lines = []
        async with asyncio.timeout(30):
            while len(lines) < 200:
                line = await child.stdout.readline()
                if not line:
                    break
                lines.append(line)
        assert lines, "the writer process printed nothing"
    finally:
        # No goodbye: the writer thread may be in the middle of a transaction.
        child.send_signal(signal.SIGKILL)
        rest, errors = await child.communicate()
    assert child.returncode == -signal.SIGKILL, errors.decode()
    # Every line printed before the kill was acknowledged; a cut-off last line cannot be.
    printed = [line.decode().split(" ", 1) for line in lines + rest.splitlines(keepends=True)]
    acknowledged = {int(seq): text.rstrip("\n") for seq, text in printed if text.endswith("\n")}
    assert len(acknowledged) >= 200

    async with await Store.open(path) as store:
        stored = {m.seq: m for m in await store.history("kill", limit=1_000_000)}
    for seq, text in acknowledged.items():
        assert seq in stored, f"acknowledged seq {seq} was lost"
        assert (stored[seq].text, stored[seq].status) == (text, "complete")
    assert sorted(stored) == list(range(1, len(stored) + 1))  # no gaps, nothing torn


async def test_reopening_a_closed_file_finds_everything(tmp_path: Path) -> None:
    path = tmp_path / "chat.db"
    store = await Store.open(path)
    session = await store.create_session("Ada")
    await store.save_session(session.id, state={"rules": {"name": "Ada"}}, room="lobby")
    # Not awaited one by one: close() runs every write submitted before it, then closes.
    written = await asyncio.gather(
        *(store.append("room:lobby", "user", "Ada", f"m{i}") for i in range(50)), store.close()
    )
    assert store.closed
    assert store_threads() == []
    async with await Store.open(path) as reopened:
        assert await reopened.history("room:lobby") == written[:50]
        record = await reopened.get_session(session.id)
        assert record is not None
        assert (record.room, record.state) == ("lobby", {"rules": {"name": "Ada"}})


async def test_a_closed_store_says_so(tmp_path: Path) -> None:
    path = tmp_path / "chat.db"
    store = await Store.open(path)
    await store.close()
    await store.close()  # idempotent
    expected = f'the store "{path}" is closed; open it again with `await Store.open(path)`'
    for call in [
        store.append("c", "user", "Ada", "hi"),
        store.history("c"),
        store.create_session("Ada"),
        store.get_session("x"),
        store.save_session("x", name="Ada"),
        store.ping(),
    ]:
        with pytest.raises(StoreError) as info:
            await call
        assert str(info.value) == expected


async def test_a_missing_folder_is_named(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "chat.db"
    with pytest.raises(StoreError) as info:
        await Store.open(path)
    assert str(info.value) == (
        f'cannot open the store "{path}": its folder "{tmp_path / "missing"}" does not exist; '
        "create the folder first, or pass another path"
    )
    assert store_threads() == []


async def test_a_file_from_a_newer_version_is_refused(newer_file: Path) -> None:
    with pytest.raises(StoreError) as info:
        await Store.open(newer_file)
    assert str(info.value) == (
        f'the store "{newer_file}" was written by a newer chatbot (schema version '
        f"{SCHEMA_VERSION + 1}; this one reads up to {SCHEMA_VERSION}): upgrade chatbot, or "
        "pass another path"
    )


async def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("not a database, just some text that is long enough " * 100)
    with pytest.raises(StoreError) as info:
        await Store.open(path)
    assert str(info.value) == (
        f'cannot open the store "{path}": file is not a database; pass the path of a chatbot '
        "store, or of a file that does not exist yet"
    )
