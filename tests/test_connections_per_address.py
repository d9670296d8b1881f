"""Connections per client address (issue 14): one address cannot hold every connection slot.

Against a real server on 127.0.0.1. The machine's own connections (loopback) are not limited
per address (the learner, the notebook, a load test); addresses forwarded by a proxy the server
is told about are. The forwarded addresses below are only header values (documentation
addresses, RFC 5737): every connection in this file goes to and from 127.0.0.1.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from chatbot import serve
from chatbot.server.limits import Limits, client_address
from chatbot.server.protocol import PROTOCOL

LIMITS = Limits(max_connections_per_address=3, trusted_proxies=("127.0.0.1",))


@contextlib.asynccontextmanager
async def opened(
    url: str, forwarded: str | None, json: bool = True
) -> AsyncIterator[ClientConnection]:
    headers = {"X-Forwarded-For": forwarded} if forwarded is not None else {}
    protocols = [PROTOCOL] if json else None
    async with connect(
        url,
        subprotocols=protocols,
        additional_headers=headers,
        proxy=None,  # type: ignore[arg-type]
    ) as ws:
        await ws.recv()  # the welcome (JSON), or nothing to wait for in plain text
        yield ws


async def refused(url: str, forwarded: str) -> InvalidStatus:
    with pytest.raises(InvalidStatus) as caught:
        async with opened(url, forwarded):
            pass
    return caught.value


async def test_one_forwarded_address_gets_at_most_its_share() -> None:
    async with serve(port=0, limits=LIMITS) as server, contextlib.AsyncExitStack() as stack:
        first = [
            await stack.enter_async_context(opened(server.url, "203.0.113.7")) for _ in range(3)
        ]
        error = await refused(server.url, "203.0.113.7")
        assert error.response.status_code == 429
        body = error.response.body.decode()
        assert "Too many connections from your address (3)" in body, body
        # Someone else, behind the same proxy, is not affected.
        await stack.enter_async_context(opened(server.url, "203.0.113.8"))
        # A slot given back is a slot free again.
        await first[0].close()
        await first[0].wait_closed()
        await stack.enter_async_context(opened(server.url, "203.0.113.7"))


async def test_plain_text_connections_count_too() -> None:
    async with serve(port=0, limits=LIMITS) as server, contextlib.AsyncExitStack() as stack:
        for _ in range(3):
            ws = await stack.enter_async_context(
                connect(
                    server.url, additional_headers={"X-Forwarded-For": "203.0.113.9"}, proxy=None
                )
            )
            await ws.send("hello")
            assert await ws.recv()
        assert (await refused(server.url, "203.0.113.9")).response.status_code == 429


async def test_addresses_a_client_prepends_do_not_help_it() -> None:
    # X-Forwarded-For is a list each proxy appends to: only the hops added by trusted proxies
    # count, so the address the trusted proxy saw is the client's, whatever came before it.
    async with serve(port=0, limits=LIMITS) as server, contextlib.AsyncExitStack() as stack:
        for fake in ("198.51.100.1", "198.51.100.2, 127.0.0.1", "not an address"):
            await stack.enter_async_context(opened(server.url, f"{fake}, 203.0.113.7"))
        assert (await refused(server.url, "198.51.100.3, 203.0.113.7")).response.status_code == 429


async def test_a_forwarded_address_from_an_untrusted_peer_is_ignored() -> None:
    # Without --trusted-proxy, anyone could claim any address: the header is not read, and the
    # peer (here loopback: this machine's own user) is not limited per address.
    untrusted = Limits(max_connections_per_address=3)
    async with serve(port=0, limits=untrusted) as server, contextlib.AsyncExitStack() as stack:
        for _ in range(5):
            await stack.enter_async_context(opened(server.url, "203.0.113.7"))
        assert server.connections == 5


@pytest.mark.parametrize(
    ("peer", "header", "trusted", "expected"),
    [
        ("127.0.0.1", None, (), "127.0.0.1"),
        ("127.0.0.1", "203.0.113.7", (), "127.0.0.1"),
        ("127.0.0.1", "203.0.113.7", ("127.0.0.1",), "203.0.113.7"),
        ("127.0.0.1", "203.0.113.7, 10.0.0.2", ("127.0.0.1", "10.0.0.0/8"), "203.0.113.7"),
        ("127.0.0.1", "10.0.0.2, 10.0.0.3", ("127.0.0.1", "10.0.0.0/8"), "10.0.0.2"),
        ("127.0.0.1", "garbage", ("127.0.0.1",), "127.0.0.1"),
        ("127.0.0.1", "", ("127.0.0.1",), "127.0.0.1"),
        ("::1", "2001:db8::1", ("::1",), "2001:db8::1"),
        ("192.0.2.1", "203.0.113.7", ("127.0.0.1",), "192.0.2.1"),
    ],
)
def test_the_client_address_is_the_last_one_a_trusted_proxy_saw(
    peer: str, header: str | None, trusted: tuple[str, ...], expected: str
) -> None:
    assert client_address(peer, header, Limits(trusted_proxies=trusted).proxies()) == expected
