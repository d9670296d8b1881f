"""The chat page behind a proxy in front of two processes sharing Redis: a rolling restart.

Two servers on one Redis, a TCP proxy in front (tests/tcp_proxy.py: what nginx does in
docs/deploy.md, in brief), two pages in Chromium in one room, one on each server. One server
closes (as on SIGTERM, 1001): its page reconnects through the proxy, lands on the other server,
resumes, and the room goes on.
"""

from __future__ import annotations

import secrets

from playwright.async_api import expect

from tests.redis_server import serve_on
from tests.tcp_proxy import failover_proxy
from tests.test_browser import (
    bot_replies,
    chat,
    chromium,
    new_page,
    open_chat,
    pytestmark,  # noqa: F401 (the same skip: without Chromium, outside CI)
    status,
    texts,
    word_by_word,
)


async def test_the_page_moves_to_the_other_process_in_a_rolling_restart(
    redis_url: str, redis_prefix: str
) -> None:
    brain, backend = word_by_word(), (redis_url, redis_prefix)
    room = f"lab{secrets.token_hex(3)}"
    async with (
        serve_on(backend, brain) as a,
        serve_on(backend, brain) as b,
        failover_proxy([a.port, b.port]) as proxy,
        chromium() as browser,
        new_page(browser) as ada,
        new_page(browser) as bob,
    ):
        url = f"http://127.0.0.1:{proxy.port}/?room={room}"
        await open_chat(ada, f"{url}&name=Ada")  # on A, the proxy's first choice
        proxy.upstreams = [b.port, a.port]
        await open_chat(bob, f"{url}&name=Bob")  # on B
        assert (a.connections, b.connections) == (1, 1)
        await chat(ada, "hello from Ada")
        await expect(bob.locator("#log .msg.other .text")).to_have_text("hello from Ada")

        # A rolling restart takes server A down: every page on it is closed with 1001.
        a.close()
        await a.wait_closed()
        # Ada's page reconnects through the proxy, to B, resumes, and is back in the room.
        await expect(status(ada)).to_have_attribute("data-state", "reconnecting")
        await expect(status(ada)).to_have_attribute("data-state", "connected")
        assert b.connections == 2
        await chat(bob, "hello from Bob")
        await expect(bot_replies(ada)).to_have_count(2)
        await expect(bot_replies(ada).last).to_have_attribute("data-status", "complete")
        for page in (ada, bob):
            assert await texts(page) == [
                "hello from Ada",
                "You said: hello from Ada",
                "hello from Bob",
                "You said: hello from Bob",
            ]
