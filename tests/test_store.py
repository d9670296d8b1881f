"""The session store: round trips, ordering, group commit, a free event loop, and durability."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sqlite3
import sys
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from chatbot.storage import sqlite as sqlite_store
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


async def test_history_before_a_seq_pages_back_to_the_first_message(open_store: OpenStore) -> None:
    async with await open_store() as store:
        for i in range(10):
            await store.append("c", "user", "Ada", f"m{i}")
        await store.append("other", "user", "Bob", "not in c")
        page = await store.history("c", limit=3, before=8)
        assert [(m.seq, m.text) for m in page] == [(5, "m4"), (6, "m5"), (7, "m6")]
        assert [m.seq for m in await store.history("c", limit=3, before=3)] == [1, 2]
        assert await store.history("c", before=1) == []
        assert len(await store.history("c", before=1000)) == 10  # a seq past the end: all
        assert await store.history("c", limit=0, before=5) == []
        for before in (0, -1):
            with pytest.raises(ValueError) as info:
                await store.history("c", before=before)
            assert str(info.value) == f"before must be a seq (1 or more), got {before}"


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
    # Every line printed before the kill was acknowledged; a cut-off last line cannot be (it
    # may end anywhere, even before the space: filter before splitting).
    printed = [line.decode() for line in lines + rest.splitlines(keepends=True)]
    whole = [line.rstrip("\n").split(" ", 1) for line in printed if line.endswith("\n")]
    acknowledged = {int(seq): text for seq, text in whole}
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


# Sessions expire (issue 14, defect 8). The SQLite store reads the time from a clock the test
# passes and deletes what is idle when asked (expire()), on open, and every EXPIRE_EVERY commits;
# Redis deletes idle keys itself, so there the test moves time by taking seconds off every TTL.
TTL = 100.0


class Clock:
    """A clock the test moves: what the SQLite store calls instead of time.time."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


class Idle:
    """Opens a store of either backend with a session TTL of ``TTL``, and lets time pass."""

    def __init__(self, open_store: OpenStore, redis_url: str | None) -> None:
        self._open, self.redis_url, self.clock = open_store, redis_url, Clock()

    def open(self) -> Awaitable[Any]:
        if self.redis_url is None:
            return self._open(session_ttl=TTL, clock=self.clock)
        return self._open(session_ttl=TTL)

    async def wait(self, store: Any, seconds: float) -> None:
        """``seconds`` pass without any use; then what has been idle too long is gone."""
        if self.redis_url is None:
            self.clock.now += seconds
            await store.expire()
            return
        async with aioredis.Redis.from_url(self.redis_url, decode_responses=True) as redis:
            async for key in redis.scan_iter(match=f"{store._prefix}*"):
                left = await redis.pttl(key)
                if left == -1:
                    raise AssertionError(f"the key {key!r} never expires (TTL -1)")
                if 0 < left <= seconds * 1000:
                    await redis.delete(key)  # what Redis does once the TTL runs out
                elif left > 0:
                    await redis.pexpire(key, left - int(seconds * 1000))


@pytest.fixture
def idle(request: pytest.FixtureRequest, open_store: OpenStore) -> Idle:
    if request.node.callspec.params["open_store"] == "sqlite":
        return Idle(open_store, None)
    return Idle(open_store, request.getfixturevalue("redis_url"))


async def test_an_idle_session_expires_with_its_messages_and_a_used_one_stays(idle: Idle) -> None:
    async with await idle.open() as store:
        resumed, talking, renamed, silent = [
            await store.create_session(name) for name in ("Ada", "Bob", "Cy", "Dee")
        ]
        for session in (resumed, talking, renamed, silent):
            await store.append(session.id, "user", session.name, "hello")
        await idle.wait(store, 0.6 * TTL)
        # Each kind of use renews a session: a resume, a message, a save.
        assert await store.get_session(resumed.id) is not None
        await store.append(talking.id, "user", "Bob", "still here")
        await store.save_session(renamed.id, name="Cyd")
        await idle.wait(store, 0.6 * TTL)  # 1.2 TTL after the silent session's last use
        assert await store.get_session(silent.id) is None
        assert await store.history(silent.id) == []
        for session in (resumed, talking, renamed):
            assert await store.get_session(session.id) is not None
            assert (await store.history(session.id))[0].text == "hello"
        # A new message in an expired conversation starts again at seq 1.
        assert (await store.append(silent.id, "user", "Dee", "back")).seq == 1


async def test_a_rooms_history_stays_while_the_room_is_used(idle: Idle) -> None:
    async with await idle.open() as store:
        await store.append("room:lobby", "user", "Ada", "first")
        await store.append("room:attic", "user", "Ada", "forgotten")
        for _ in range(3):  # three TTLs in all, with a message in the lobby each 0.6 TTL
            await idle.wait(store, 0.6 * TTL)
            await store.append("room:lobby", "user", "Ada", "still talking")
        await idle.wait(store, 0.6 * TTL)
        assert [m.text for m in await store.history("room:lobby")][:2] == ["first", "still talking"]
        assert await store.history("room:attic") == []


async def test_session_ttl_must_be_a_positive_number(open_store: OpenStore) -> None:
    for wrong in (0, -1, float("nan"), float("inf"), "30d", None, True):
        with pytest.raises(ValueError) as info:
            await open_store(session_ttl=wrong)
        assert str(info.value) == f"session_ttl must be a positive number of seconds, got {wrong!r}"


async def test_sqlite_expires_in_bounded_batches_on_open_and_every_n_commits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_store, "EXPIRE_BATCH", 3)
    monkeypatch.setattr(sqlite_store, "EXPIRE_EVERY", 10**9)  # only when asked, at first
    path, clock = tmp_path / "chat.db", Clock()
    async with await Store.open(path, session_ttl=TTL, clock=clock) as store:
        old = [await store.create_session(f"guest-{n}") for n in range(10)]
        clock.now += 2 * TTL
        assert await store.expire() == 10  # four batches of at most 3
        assert [await store.get_session(s.id) for s in old] == [None] * 10
        # Every EXPIRE_EVERY commits, the store's thread runs a batch by itself.
        monkeypatch.setattr(sqlite_store, "EXPIRE_EVERY", 5)
        more = [await store.create_session(f"guest-{n}") for n in range(4)]
        clock.now += 2 * TTL
        for n in range(2 * sqlite_store.EXPIRE_EVERY):  # a run, and ops after each batch of it
            await store.append("room:lobby", "user", "Ada", f"m{n}")
        assert [await store.get_session(s.id) for s in more] == [None] * 4
        left = await store.create_session("left behind")
    clock.now += 2 * TTL
    async with await Store.open(path, session_ttl=TTL, clock=clock) as store:
        assert await store.get_session(left.id) is None  # expired as the store opened
        assert await store.history("room:lobby") == []


# The tables of schema version 1, as chatbot wrote them before sessions expired.
SCHEMA_1 = (
    "CREATE TABLE sessions (id TEXT PRIMARY KEY, name TEXT NOT NULL, room TEXT,"
    " state TEXT NOT NULL, created REAL NOT NULL)",
    "CREATE TABLE messages (conversation TEXT NOT NULL, seq INTEGER NOT NULL,"
    " role TEXT NOT NULL CHECK (role IN ('user', 'bot')), author TEXT NOT NULL,"
    " text TEXT NOT NULL,"
    " status TEXT NOT NULL CHECK (status IN ('complete', 'stopped', 'partial')),"
    " time REAL NOT NULL, PRIMARY KEY (conversation, seq)) WITHOUT ROWID",
    "PRAGMA user_version=1",
)


async def test_a_database_of_schema_1_opens_keeps_its_data_and_expires_what_is_idle(
    tmp_path: Path,
) -> None:
    path, clock = tmp_path / "old.db", Clock()
    recent, old = clock.now - 0.5 * TTL, clock.now - 2 * TTL
    with contextlib.closing(sqlite3.connect(path)) as connection, connection:
        for statement in SCHEMA_1:
            connection.execute(statement)
        connection.executemany(
            "INSERT INTO sessions VALUES (?, ?, ?, ?, ?)",
            [("kept", "Ada", "lobby", '{"n": 1}', old), ("gone", "Bob", None, "{}", old)],
        )
        connection.executemany(
            "INSERT INTO messages VALUES (?, ?, 'user', 'Ada', ?, 'complete', ?)",
            [
                ("kept", 1, "old", old),
                ("kept", 2, "recent", recent),
                ("gone", 1, "old", old),
                ("room:lobby", 1, "recent", recent),
            ],
        )
    async with await Store.open(path, session_ttl=TTL, clock=clock) as store:
        kept = await store.get_session("kept")
        assert kept is not None
        assert (kept.name, kept.room, kept.state, kept.created) == ("Ada", "lobby", {"n": 1}, old)
        assert [m.text for m in await store.history("kept")] == ["old", "recent"]
        assert [m.text for m in await store.history("room:lobby")] == ["recent"]
        # Its last use was its newest message, 2 TTL ago: it expired as the store opened.
        assert await store.get_session("gone") is None
        assert await store.history("gone") == []
        assert (await store.append("kept", "user", "Ada", "new")).seq == 3
    with contextlib.closing(sqlite3.connect(path)) as connection:
        assert connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2


async def test_ping_fails_when_the_sqlite_store_cannot_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Readers never wait in WAL mode, so a read-only ping said "ready" while every write failed.
    monkeypatch.setattr(sqlite_store, "BUSY_TIMEOUT_MS", 50)
    path = tmp_path / "chat.db"
    async with await Store.open(path) as store:
        await store.ping()
        other = sqlite3.connect(path, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")  # holds the write lock past the busy timeout
            with pytest.raises(StoreError) as info:
                await store.ping()
            assert str(info.value) == (f'cannot write to the store "{path}": database is locked')
        finally:
            other.rollback()
            other.close()
        await store.ping()  # writable again: ready again


async def test_append_soon_tells_the_seq_before_the_commit_and_it_is_the_stored_one(
    tmp_path: Path,
) -> None:
    # Issue 16: the hub sends a reply's end before its commit, with this seq.
    async with await Store.open(tmp_path / "chat.db") as store:
        seq, written = store.append_soon("c", "user", "Ada", "first")
        assert seq is None  # nothing known of this conversation yet
        assert (await written).seq == 1
        told = [store.append_soon("c", "bot", "echo", f"m{n}") for n in range(5)]
        assert [seq for seq, _ in told] == [2, 3, 4, 5, 6]
        assert [(await written).seq for _, written in told] == [2, 3, 4, 5, 6]
        assert (await store.append("c", "user", "Ada", "last")).seq == 7


async def test_append_soon_forgets_its_count_when_a_commit_fails(tmp_path: Path) -> None:
    async with await Store.open(tmp_path / "chat.db") as store:
        await store.append("c", "user", "Ada", "first")
        other = sqlite3.connect(tmp_path / "chat.db", isolation_level=None)
        try:
            other.execute("CREATE TRIGGER no_bots BEFORE INSERT ON messages WHEN NEW.role = 'bot' "
                          "BEGIN SELECT RAISE(ABORT, 'no bots'); END")  # fmt: skip
            seq, written = store.append_soon("c", "bot", "echo", "refused")
            assert seq == 2
            with pytest.raises(StoreError, match="no bots"):
                await written
            other.execute("DROP TRIGGER no_bots")
        finally:
            other.close()
        # The count was forgotten: not known, then learned again from what is stored.
        seq, written = store.append_soon("c", "bot", "echo", "accepted")
        assert (seq, (await written).seq) == (None, 2)
        assert store.append_soon("c", "user", "Ada", "next")[0] == 3
