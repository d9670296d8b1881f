"""Plain HTTP on the WebSocket port: the page, the health checks, 404, and the page's URL."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from chatbot import serve
from chatbot.server.web import NOT_FOUND, READY_TIMEOUT, page, page_url
from chatbot.storage.sqlite import Store
from tests.helpers import chat, client


def request(url: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy
    try:
        with direct.open(urllib.request.Request(url, method=method), timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


async def test_the_page_health_check_and_404_share_the_websocket_port() -> None:
    async with serve(port=0) as server:
        base = server.http_url.rstrip("/")
        results = await asyncio.gather(
            *(
                asyncio.to_thread(request, base + path, method)
                for path, method in [
                    ("/", "GET"),
                    ("/?token=abc", "GET"),
                    ("/index.html", "GET"),
                    ("/", "HEAD"),
                    ("/healthz", "GET"),
                    ("/nope", "GET"),
                    ("/", "POST"),
                ]
            )
        )
    (page_, query, index, head, health, missing, post) = results
    assert page_[0] == 200 and page_[1]["Content-Type"] == "text/html; charset=utf-8"
    assert page_[2] == page() and page_[2].lower().startswith(b"<!doctype html>")
    assert query[2] == index[2] == page()  # routed on the path, without the query string
    assert head[0] == 200 and head[2] == b"" and head[1]["Content-Length"] == str(len(page()))
    assert health[:1] == (200,) and health[2] == b"ok\n"
    assert missing[0] == 404 and missing[2].decode() == NOT_FOUND
    assert post[0] == 404


def test_page_url_is_local_or_behind_the_hub_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JUPYTERHUB_SERVICE_PREFIX", raising=False)
    assert page_url(8000) == "http://127.0.0.1:8000/"
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "/user/ada/")
    assert page_url(8000) == "/user/ada/proxy/8000/"


async def test_readyz_answers_ready_while_the_store_answers() -> None:
    async with serve(port=0) as server, httpx.AsyncClient(trust_env=False, timeout=10) as http:
        ready = await http.get(server.http_url + "readyz?probe=1")
        head = await http.head(server.http_url + "readyz")
    assert (ready.status_code, ready.text) == (200, "ready\n")
    assert ready.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert (head.status_code, head.content) == (200, b"")
    assert head.headers["Content-Length"] == str(len("ready\n"))


async def test_readyz_answers_503_when_the_store_is_closed_and_logs_why(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "chat.db"
    store = await Store.open(path)
    async with (
        serve(port=0, store=store) as server,
        httpx.AsyncClient(trust_env=False, timeout=10) as http,
    ):
        await store.close()  # the server does not own it: it goes on serving without it
        ready = await http.get(server.http_url + "readyz")
        head = await http.head(server.http_url + "readyz")
        health = await http.get(server.http_url + "healthz")
        page_ = await http.get(server.http_url)
        async with client(server.url) as ws:  # plain text needs no store: it still chats
            assert await chat(ws, "still here") == "still here"
    # The client is told what, the server's log why (a path is not for whoever reaches the port).
    assert (ready.status_code, ready.text) == (
        503,
        "not ready: the store does not answer (the server's log says why)\n",
    )
    assert str(path) not in ready.text
    assert f'not ready: the store "{path}" is closed' in caplog.text
    assert (head.status_code, head.content) == (503, b"")
    assert (health.status_code, health.text) == (200, "ok\n")  # alive: a restart would not help
    assert (page_.status_code, page_.content) == (200, page())


@contextlib.asynccontextmanager
async def write_lock_held(path: Path, store: Store) -> AsyncIterator[asyncio.Task[Any]]:
    """Another connection holds the write lock of the file at ``path``, and a write of ``store``
    waits for it (yielded: it goes through once the lock is let go, on the way out)."""
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        yield asyncio.create_task(store.append("c", "user", "Ada", "waits for the lock"))
        other.execute("ROLLBACK")
    finally:
        other.close()


async def test_readyz_answers_503_while_the_stores_thread_is_stuck(tmp_path: Path) -> None:
    # Another process holds the file's write lock: the store's thread waits for it in a write
    # (up to BUSY_TIMEOUT_MS, 5 s), and the ping queued behind that write gets no answer.
    path = tmp_path / "chat.db"
    async with (
        await Store.open(path) as store,
        serve(port=0, store=store) as server,
        httpx.AsyncClient(trust_env=False, timeout=10) as http,
    ):
        async with write_lock_held(path, store) as write:
            stuck = await http.get(server.http_url + "readyz")
            health = await http.get(server.http_url + "healthz")
        stored = await write  # the lock is free: the write goes through after all
        ready = await http.get(server.http_url + "readyz")
    assert (stuck.status_code, stuck.text) == (
        503,
        f"not ready: the store does not answer within {READY_TIMEOUT:g} s\n",
    )
    assert (health.status_code, health.text) == (200, "ok\n")
    assert stored.seq == 1
    assert (ready.status_code, ready.text) == (200, "ready\n")


class CountedStore(Store):
    """The SQLite store, counting its pings."""

    pings = 0

    async def ping(self) -> None:
        self.pings += 1
        await super().ping()


async def test_readyz_requests_that_come_together_share_one_ping(tmp_path: Path) -> None:
    # Each /readyz queued a ping of its own: while the store was stuck, 300 requests left 199
    # writes queued behind the stuck one. Requests that come meanwhile now share one.
    path = tmp_path / "chat.db"
    async with (
        await CountedStore.open(path) as store,
        serve(port=0, store=store) as server,
        httpx.AsyncClient(trust_env=False, timeout=10) as http,
    ):
        async with write_lock_held(path, store) as write:
            stuck = await asyncio.gather(*(http.get(server.http_url + "readyz") for _ in range(50)))
        await write
        assert store.pings == 1
        assert {(answer.status_code, answer.text) for answer in stuck} == {
            (503, f"not ready: the store does not answer within {READY_TIMEOUT:g} s\n")
        }
        ready = await http.get(server.http_url + "readyz")  # that ping, if still on its way
        pinged = store.pings
        again = await http.get(server.http_url + "readyz")  # after it ended: a ping of its own
        assert (ready.text, again.text, store.pings) == ("ready\n", "ready\n", pinged + 1)


async def test_not_found_names_the_health_checks() -> None:
    async with serve(port=0) as server, httpx.AsyncClient(trust_env=False, timeout=10) as http:
        missing = await http.get(server.http_url + "nope")
    assert (missing.status_code, missing.text) == (404, NOT_FOUND)
    assert "/healthz" in NOT_FOUND and "/readyz" in NOT_FOUND
