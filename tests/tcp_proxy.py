"""A TCP proxy for the tests: what nginx does in front of several chatbot processes, in brief.

Each new connection goes to the first upstream port that accepts it: an upstream that refuses
(its process is down) is skipped, as nginx's ``proxy_next_upstream error`` does. The order is
the test's to set (``proxy.upstreams``), so a test decides which process a client lands on.
Bytes are copied both ways unchanged: WebSocket upgrades, ``Host`` and ``Origin`` pass through.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

CONNECT_TIMEOUT = 2.0


class FailoverProxy:
    """Listens on 127.0.0.1; ``upstreams`` are ports on 127.0.0.1, tried in order."""

    def __init__(self, upstreams: list[int]) -> None:
        self.upstreams = upstreams
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._serve(reader, writer)
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for port in list(self.upstreams):  # each upstream once at most
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT):
                    up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
            except (OSError, TimeoutError):
                continue  # down: the next one
            try:
                await asyncio.gather(_copy(reader, up_writer), _copy(up_reader, writer))
            finally:
                up_writer.close()
            return
        # Every upstream is down: the client sees the connection closed (nginx would say 502).


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(65536):  # ends at EOF
            writer.write(data)
            await writer.drain()
    with contextlib.suppress(OSError):
        writer.write_eof()


@asynccontextmanager
async def failover_proxy(upstreams: list[int]) -> AsyncIterator[FailoverProxy]:
    """Start a :class:`FailoverProxy` in front of ``upstreams``; close it at the end."""
    proxy = FailoverProxy(upstreams)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()
