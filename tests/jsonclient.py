"""A small client for the JSON protocol ``chatbot.v1``, for tests: real connections, strict checks.

Example::

    async with json_client(server.url) as alice:
        ack, end = await alice.say("hello", id="m1")
        await alice.send({"type": "stop", "id": "s1"})
        await alice.expect_error("nothing_to_stop", "No reply is being written.", id="s1")
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from chatbot.server.protocol import PROTOCOL

__all__ = ["RECV_TIMEOUT", "JsonClient", "json_client"]

RECV_TIMEOUT = 5.0
"""Seconds to wait for one server message. Replies here take milliseconds: a message that does
not come in this time is a bug (a dropped answer, a stuck sender), so fail rather than hang."""


class JsonClient:
    """One ``chatbot.v1`` connection: send objects, receive dicts, check what comes back.

    Every receiving method is strict: the next message must be the one expected, so a stray or
    missing message fails the test where it happens.
    """

    def __init__(self, connection: ClientConnection, welcome: dict[str, Any]) -> None:
        self.connection = connection
        self.welcome = welcome

    @property
    def session(self) -> str:
        """The session id the server gave in ``welcome``."""
        return str(self.welcome["session"])

    @property
    def name(self) -> str:
        """The display name the server gave in ``welcome``."""
        return str(self.welcome["name"])

    async def send(self, message: Any) -> None:
        """Send ``message`` as one JSON text frame (any JSON value, not only objects).

        ``json.dumps`` escapes non-ASCII characters, so even a lone surrogate goes out as the
        six characters ``\\ud800``: valid UTF-8 on the wire, whatever the server makes of it.
        """
        await self.connection.send(json.dumps(message))

    async def send_frame(self, frame: str | bytes) -> None:
        """Send ``frame`` as it is: a text frame for ``str``, a binary frame for ``bytes``."""
        await self.connection.send(frame)

    async def recv(self, timeout: float = RECV_TIMEOUT) -> dict[str, Any]:  # noqa: ASYNC109
        """Receive the next message: a JSON object with a string ``type``.

        Raises:
            TimeoutError: nothing came within ``timeout`` seconds.
            ConnectionClosed: the server closed the connection.
        """
        async with asyncio.timeout(timeout):
            frame = await self.connection.recv()
        assert isinstance(frame, str), f"expected a text frame, got {frame!r}"
        message = json.loads(frame)
        assert isinstance(message, dict), f"expected a JSON object, got {frame!r}"
        assert isinstance(message.get("type"), str), f"expected a string type in {frame!r}"
        return message

    async def expect(self, type: str, **fields: Any) -> dict[str, Any]:
        """Receive the next message; check its ``type`` and the given ``fields``; return it."""
        message = await self.recv()
        assert message["type"] == type, f"expected a {type!r} message, got {message!r}"
        for key, value in fields.items():
            assert message.get(key) == value, f"expected {key}={value!r} in {message!r}"
        return message

    async def expect_error(
        self, code: str, message: str | None = None, *, id: str | None = None
    ) -> dict[str, Any]:
        """Receive the next message: an ``error`` with this ``code`` and ``id`` (absent if None).

        ``message`` is compared exactly when given; the error is returned for other checks.
        """
        error = await self.expect("error", code=code)
        assert error.get("id") == id, f"expected id={id!r} in {error!r}"
        if message is not None:
            assert error["message"] == message, f"expected message {message!r} in {error!r}"
        return error

    async def reply(self, to: int) -> dict[str, Any]:
        """Receive a whole streamed reply to message ``to``; return its ``reply.end``.

        Checks the stream: ``reply.start``, then ``reply.chunk``s of the same reply, then
        ``reply.end`` whose text is the chunks joined.
        """
        start = await self.expect("reply.start", to=to)
        chunks: list[str] = []
        while True:
            message = await self.recv()
            assert message.get("reply") == start["reply"], f"another reply in {message!r}"
            if message["type"] == "reply.end":
                break
            assert message["type"] == "reply.chunk", f"expected a chunk, got {message!r}"
            chunks.append(message["text"])
        assert message["text"] == "".join(chunks), f"chunks {chunks!r} != end {message!r}"
        return message

    async def say(self, text: str, id: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        """Send a chat message; return its ``ack`` and the ``reply.end`` of the bot's answer.

        The next messages must be exactly the ack and the streamed reply (no message from a
        room's other members in between: use it where nobody else talks).
        """
        await self.send({"type": "message", "text": text} | ({"id": id} if id else {}))
        ack = await self.expect("ack")
        assert ack.get("id") == id, f"expected id={id!r} in {ack!r}"
        return ack, await self.reply(ack["seq"])

    async def close(self) -> None:
        """Close the connection (normal closure)."""
        await self.connection.close()


@asynccontextmanager
async def json_client(url: str, **kwargs: Any) -> AsyncIterator[JsonClient]:
    """Connect to ``url`` offering ``chatbot.v1``; check the subprotocol and read ``welcome``.

    Args:
        url: the server's WebSocket URL.
        **kwargs: passed to :func:`websockets.asyncio.client.connect` (``origin``...).

    Raises:
        websockets.exceptions.InvalidStatus: the server refused the handshake (403, 503...).
    """
    options: dict[str, Any] = {"proxy": None, "open_timeout": 30} | kwargs
    async with connect(url, subprotocols=[Subprotocol(PROTOCOL)], **options) as connection:
        assert connection.subprotocol == PROTOCOL, "the server did not select chatbot.v1"
        client = JsonClient(connection, {})
        client.welcome = await client.expect("welcome", protocol=PROTOCOL)
        yield client
