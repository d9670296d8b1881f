"""The load generator's fast clients: picows on uvloop, callbacks instead of coroutines.

A websockets client costs about as much CPU per round trip as the server it loads (the same
framing, masking and system calls, plus a coroutine, a future and a queue per frame), so on two
cores a websockets load generator cannot saturate a fast server: it measures itself. picows
parses frames in C and calls :meth:`_Client.on_ws_frame` for each one; the closed loop (record
the round trip, send the next message) runs inside that callback, with no task, no future and no
timer per message. Used by :mod:`loadgen` when picows is installed (``--client picows``, the
default then; ``--client websockets`` keeps the old clients, to compare).

picows does not offer permessage-deflate: the servers answer uncompressed (the chatbot turns
compression off anyway; the raw echo then runs uncompressed too).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from typing import Any

from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

__all__ = ["FastClient", "connect_fast"]

PROTOCOL = "chatbot.v1"
_SKIPPED = (b'{"type":"ack"', b'{"type":"reply.start"', b'{"type":"reply.chunk"')
MAX_FRAMES_PER_REPLY = 10_000


class FastClient(WSListener):  # type: ignore[misc]
    """One closed-loop client, driven by picows's frame callback.

    ``start()`` sends the first message; each complete reply records its latency (if it ended
    inside the measured window) and sends the next, until ``measure_until`` or
    ``max_round_trips``; then ``done`` is set. Errors are counted in ``state`` (the worker's
    ``_WorkerState``) by kind, as the websockets clients count them.
    """

    def __init__(self, mode: str, expect_echo: bool, messages: Sequence[str]) -> None:
        self.mode = mode
        self.expect_echo = expect_echo
        self.messages = messages
        self.frames = [
            (m if mode == "text" else json.dumps({"type": "message", "text": m})).encode()
            for m in messages
        ]
        self.transport: WSTransport | None = None
        self.welcomed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.state: Any = None
        self.number = 0
        self.sent = 0
        self.max_round_trips = 0
        self.measure_from = self.measure_until = 0.0
        self.started = 0
        self.waiting = False
        self.frames_this_reply = 0
        self.parts: list[bytes] = []

    # --- picows callbacks

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        if self.mode == "text" and not self.welcomed.done():
            self.welcomed.set_result(None)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        kind = frame.msg_type
        if kind == WSMsgType.TEXT or kind == WSMsgType.CONTINUATION:
            payload = frame.get_payload_as_bytes()
            if not frame.fin or self.parts:  # a fragmented message: gather it
                self.parts.append(payload)
                if not frame.fin:
                    return
                payload, self.parts = b"".join(self.parts), []
            self._message(payload)
        elif kind == WSMsgType.CLOSE:
            self._fail(f"connection closed: {frame.get_close_code().value}", stop=True)
            transport.send_close(WSCloseCode.OK)
            transport.disconnect()
        elif kind == WSMsgType.BINARY:
            self._fail("binary reply", stop=False)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if not self.welcomed.done():
            self.welcomed.set_exception(ConnectionError("closed before welcome"))
        self._fail("connection closed: 1006", stop=True)

    # --- the closed loop

    def start(self, state: Any, number: int, measure_from: float, measure_until: float,
              max_round_trips: int) -> None:  # fmt: skip
        """Begin the closed loop (call once every client is connected)."""
        self.state, self.number = state, number
        self.measure_from, self.measure_until = measure_from, measure_until
        self.max_round_trips = max_round_trips
        self._send_next()

    def _send_next(self) -> None:
        if self.sent >= self.max_round_trips or time.monotonic() >= self.measure_until:
            self._finish()
            return
        assert self.transport is not None
        self.turn = (self.number + self.sent) % len(self.messages)
        self.sent += 1
        self.waiting = True
        self.frames_this_reply = 0
        self.started = time.perf_counter_ns()
        self.transport.send(WSMsgType.TEXT, self.frames[self.turn])

    def _message(self, payload: bytes) -> None:
        if not self.waiting:
            if not self.welcomed.done():
                if b'"welcome"' in payload[:40]:
                    self.welcomed.set_result(None)
                else:
                    self.welcomed.set_exception(
                        ConnectionError(f"expected welcome, got {payload[:40]!r}")
                    )
            return  # presence, typing...: not an answer to anything we sent
        if self.mode == "text":
            self._reply(payload.decode())
            return
        if payload.startswith(_SKIPPED):
            self.frames_this_reply += 1
            if self.frames_this_reply > MAX_FRAMES_PER_REPLY:
                self._fail("reply never ended", stop=True)
            return
        message = json.loads(payload)
        kind = message.get("type")
        if kind == "reply.end":
            if message.get("status") != "complete":
                self._error(f"reply.end status {message.get('status')}")
                return
            self._reply(str(message.get("text", "")))
        elif kind == "error":
            self._error(f"error {message.get('code')}")

    def _reply(self, text: str) -> None:
        elapsed_us = (time.perf_counter_ns() - self.started) // 1000
        self.waiting = False
        if self.expect_echo and text != self.messages[self.turn]:
            self._error(
                "rate limited (Slow down)" if text.startswith("Slow down") else "unexpected reply"
            )
            return
        if self.measure_from <= time.monotonic() <= self.measure_until:
            self.state.histogram.record(elapsed_us)
            self.state.measured += 1
        self._send_next()

    def _error(self, kind: str) -> None:
        # A reply that ended badly; the connection is still in step: go on.
        self.waiting = False
        self.state.error(kind)
        self._send_next()

    def _fail(self, kind: str, *, stop: bool) -> None:
        if self.waiting and self.state is not None:
            self.state.error(kind)
            self.waiting = False
        if stop:
            self._finish()

    def _finish(self) -> None:
        self.waiting = False
        if not self.done.done():
            self.done.set_result(None)

    def timed_out(self) -> None:
        """The caller gave up waiting: a round trip still in flight counts as a timeout."""
        self._fail("timeout", stop=True)

    def close(self) -> None:
        """Close politely (the server sees 1000), without waiting."""
        if self.transport is not None and not self.transport.is_disconnected:
            self.transport.send_close(WSCloseCode.OK)
            self.transport.disconnect()


async def connect_fast(
    url: str, mode: str, expect_echo: bool, messages: Sequence[str], seconds: float
) -> FastClient:
    """Open one picows connection (offering ``chatbot.v1`` in json mode) and wait for welcome."""
    headers = {"Sec-WebSocket-Protocol": PROTOCOL} if mode == "json" else None
    factory: Callable[[], FastClient] = lambda: FastClient(mode, expect_echo, messages)  # noqa: E731
    async with asyncio.timeout(seconds):
        transport, client = await ws_connect(
            factory, url, extra_headers=headers, websocket_handshake_timeout=seconds,
            enable_auto_pong=True, max_frame_size=16 * 2**20,
        )  # fmt: skip
        try:
            if mode == "json":
                chosen = transport.response.headers.get("Sec-WebSocket-Protocol")
                if chosen != PROTOCOL:
                    raise ConnectionError(f"server did not select {PROTOCOL}")
            await client.welcomed
        except BaseException:
            transport.disconnect()
            raise
    return client
