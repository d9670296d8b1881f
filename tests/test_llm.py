"""The ``llm`` brain against eliza-gpt, a real OpenAI-compatible server, on 127.0.0.1.

eliza-gpt (on PyPI) serves ``/v1/chat/completions`` with ELIZA behind it: it streams one chunk
per word, then ``data: [DONE]``. Shapes it never sends (malformed streams, error events, a server
that never sends ``[DONE]``) come from a small HTTP server in this file that answers with fixed
bytes over a real socket; nothing is mocked.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import aclosing, asynccontextmanager, contextmanager
from dataclasses import dataclass, field

import httpx
import pytest

from chatbot.brains.base import BrainError, Conversation, Turn
from chatbot.brains.llm import (
    DEFAULT_LLM_IDLE_TIMEOUT,
    DEFAULT_LLM_MAX_LINE_BYTES,
    DEFAULT_LLM_MAX_REPLY_CHARS,
    DEFAULT_LLM_MAX_REPLY_SECONDS,
    DEFAULT_SYSTEM_PROMPT,
    LlmBrain,
    LlmConfigError,
)
from tests.helpers import chat, chatbot_process, client

API_KEY = "test-key"
STARTUP_TIMEOUT = 30.0  # seconds for eliza-gpt to start answering

# eliza-gpt answers "I am sad" with one of these, in turn: the script's reassembly rules
# rotate, and the rotation is shared by every request the server receives.
SAD_REPLIES = {
    "I am sorry to hear that you are sad.",
    "Do you think coming here will help you not to be sad?",
    "I'm sure it's not pleasant to be sad.",
    "Can you explain what made you sad?",
}
# What ELIZA says when nothing matches and it remembers nothing.
GENERIC_REPLIES = {
    "Please go on.",
    "I am not sure I understand you fully.",
    "What does that suggest to you?",
    "That is interesting. Please continue.",
    "Tell me more about that.",
    "Does talking about this bother you?",
}


# eliza-gpt in a child process, on a free port.


@dataclass
class Eliza:
    url: str
    port: int


def free_port() -> int:
    """Return a port that was free a moment ago (another program may take it: retry then)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until_serving(process: subprocess.Popen[bytes], port: int) -> bool:
    """Wait until eliza-gpt answers on ``port``: True, or False if it exited first."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            # eliza-gpt prints its banner before it binds the port, so ask it a question. Its
            # own answer to a request without a key proves it is eliza-gpt on that port.
            response = httpx.post(url, json={}, timeout=1.0, trust_env=False)
        except httpx.TransportError:
            pass
        else:
            if response.status_code == 401 and response.json() == {"error": "Invalid API key"}:
                return True
        time.sleep(0.05)  # polling a child process: there is no event to wait for
    raise AssertionError(f"eliza-gpt did not answer on port {port} within {STARTUP_TIMEOUT} s")


@contextmanager
def eliza_gpt(avg_response_time: float) -> Iterator[Eliza]:
    """Run ``eliza-gpt`` on a free loopback port; stop it at the end."""
    for _ in range(3):
        port = free_port()
        with tempfile.TemporaryFile() as output:
            # Run its CLI with this interpreter, whatever PATH says.
            process = subprocess.Popen(
                [
                    *(sys.executable, "-c", "from eliza_gpt.cli import main; main()"),
                    *("--host", "127.0.0.1", "--port", str(port), "--api-key", API_KEY),
                    *("--avg-response-time", str(avg_response_time)),
                ],
                stdout=output,
                stderr=subprocess.STDOUT,
            )
            try:
                if wait_until_serving(process, port):
                    yield Eliza(f"http://127.0.0.1:{port}/v1", port)
                    return
            finally:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            output.seek(0)
            text = output.read().decode(errors="replace")
        if "address already in use" not in text.lower():
            raise AssertionError(f"eliza-gpt exited with status {process.returncode}:\n{text}")
    raise AssertionError("eliza-gpt found no free port in 3 attempts")


@pytest.fixture(scope="module")
def eliza() -> Iterator[Eliza]:
    """eliza-gpt answering at once."""
    with eliza_gpt(avg_response_time=0) as server:
        yield server


@pytest.fixture(scope="module")
def slow_eliza() -> Iterator[Eliza]:
    """eliza-gpt waiting 0 to 1 s before each word: a reply of 7 words takes 3.5 s on average."""
    with eliza_gpt(avg_response_time=5) as server:
        yield server


# Helpers: a relay that shows what the server sees, and a server with a fixed answer.


class Relay:
    """A TCP relay in front of a server: it logs which side closed the connection first."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.closed: list[str] = []  # "client" or "server", in the order they closed
        self.first_close = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Relay:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/v1"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection("127.0.0.1", self.port)
        pipes = {
            asyncio.create_task(self._pipe(client_r, server_w, "client")),
            asyncio.create_task(self._pipe(server_r, client_w, "server")),
        }
        self._tasks |= pipes
        try:
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        finally:
            # One side is gone: close the other, as a proxy would.
            for task in pipes:
                task.cancel()
            for writer in (client_w, server_w):
                writer.close()

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, side: str
    ) -> None:
        while True:
            try:
                data = await reader.read(65536)
            except ConnectionError:
                data = b""
            if not data:
                self.closed.append(side)
                self.first_close.set()
                return
            writer.write(data)
            await writer.drain()


@dataclass
class Canned:
    url: str
    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)


async def read_request(reader: asyncio.StreamReader) -> tuple[str, dict[str, str], bytes]:
    """Read one HTTP request: its request line, headers (names in lower case) and body."""
    request_line, *header_lines = (await reader.readuntil(b"\r\n\r\n")).decode().split("\r\n")
    headers = {}
    for line in filter(None, header_lines):
        name, value = line.split(": ", 1)
        headers[name.lower()] = value
    content = await reader.readexactly(int(headers.get("content-length", "0")))
    return request_line, headers, content


@asynccontextmanager
async def canned_server(head: str, body: str, *, hang: bool = False) -> AsyncIterator[Canned]:
    """An HTTP server that answers every request with ``head`` and ``body``.

    ``head`` is the status line and headers. The body ends when the server closes the
    connection, unless ``hang``: then the server keeps it open until the test ends.
    """
    release = asyncio.Event()
    handlers: set[asyncio.Task[None]] = set()
    answer = (head.replace("\n", "\r\n") + "\r\n\r\n" + body).encode()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        try:
            served.requests.append(await read_request(reader))
            writer.write(answer)
            await writer.drain()
            if hang:
                await release.wait()
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    served = Canned(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1")
    try:
        yield served
    finally:
        release.set()
        server.close()
        await asyncio.gather(*handlers, return_exceptions=True)
        await server.wait_closed()


SSE_HEAD = "HTTP/1.1 200 OK\nContent-Type: text/event-stream\nConnection: close"


def sse(*events: object) -> str:
    """Format events the way servers do: ``data: ...`` and a blank line each."""
    return "".join(f"data: {e if isinstance(e, str) else json.dumps(e)}\n\n" for e in events)


def chunk(content: str | None = None, finish_reason: str | None = None) -> dict[str, object]:
    delta = {} if content is None else {"content": content}
    return {
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }


async def reply(
    brain: LlmBrain, message: str, conversation: Conversation | None = None
) -> list[str]:
    return [piece async for piece in brain.stream(message, conversation or Conversation())]


# Streaming replies.


async def test_reply_streams_in_several_chunks_that_join_to_the_full_text(eliza: Eliza) -> None:
    async with LlmBrain(eliza.url, "eliza", API_KEY) as brain:
        pieces = await reply(brain, "I am sad")
    assert len(pieces) >= 7  # one per word
    assert all(piece for piece in pieces)
    assert "".join(pieces) in SAD_REPLIES


async def test_conversation_history_is_sent_and_used(eliza: Eliza) -> None:
    # ELIZA remembers what "my ..." sentences said, and brings it up when nothing else matches.
    history = Conversation([Turn("user", "My mother hates me"), Turn("bot", "Tell me more.")])
    async with LlmBrain(eliza.url, "eliza", API_KEY) as brain:
        without = "".join(await reply(brain, "ok"))
        remembered = "".join(await reply(brain, "ok", history))
    assert without in GENERIC_REPLIES
    assert remembered not in GENERIC_REPLIES
    assert "mother" in remembered or "family" in remembered


async def test_request_carries_model_system_prompt_history_message_and_key() -> None:
    events = sse(
        {"choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}]},
        chunk("Hel"),
        chunk("lo!"),
        chunk(None, "stop"),
        {"choices": [], "usage": {"total_tokens": 9}},
        "[DONE]",
    )
    async with canned_server(SSE_HEAD, events) as server:
        conversation = Conversation([Turn("user", "Hi"), Turn("bot", "Hello.")])
        async with LlmBrain(server.url, "some-model", "sk-secret") as brain:
            assert await reply(brain, "Again", conversation) == ["Hel", "lo!"]
    [(request_line, headers, content)] = server.requests
    assert request_line == "POST /v1/chat/completions HTTP/1.1"
    assert headers["authorization"] == "Bearer sk-secret"
    assert headers["accept"] == "text/event-stream"
    assert json.loads(content) == {
        "model": "some-model",
        "messages": [
            {"role": "system", "content": DEFAULT_SYSTEM_PROMPT},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello."},
            {"role": "user", "content": "Again"},
        ],
        "stream": True,
    }


def test_messages_without_system_prompt() -> None:
    brain = LlmBrain("http://127.0.0.1:1/v1", "m", system_prompt="")
    assert brain.messages("Hi", Conversation([Turn("bot", "Welcome!")])) == [
        {"role": "assistant", "content": "Welcome!"},
        {"role": "user", "content": "Hi"},
    ]


async def test_reply_ends_with_the_stream_when_the_server_sends_no_done() -> None:
    async with canned_server(SSE_HEAD, sse(chunk("one "), chunk("two"))) as server:
        async with LlmBrain(server.url, "m") as brain:
            assert await reply(brain, "count") == ["one ", "two"]


async def test_reply_ends_at_finish_reason_without_waiting_for_more() -> None:
    # The server keeps the connection open after the last chunk and sends no [DONE].
    async with canned_server(SSE_HEAD, sse(chunk("Done"), chunk(".", "stop")), hang=True) as server:
        async with LlmBrain(server.url, "m") as brain, asyncio.timeout(5):
            assert await reply(brain, "finish") == ["Done", "."]


# Stop: the consumer stops iterating, or the task is cancelled.


def hooked_client(responses: list[httpx.Response]) -> httpx.AsyncClient:
    """A client that appends each response it receives to ``responses``, before the body."""

    async def keep(response: httpx.Response) -> None:
        responses.append(response)

    return httpx.AsyncClient(trust_env=False, event_hooks={"response": [keep]})


async def test_stopping_the_iteration_closes_the_http_stream(slow_eliza: Eliza) -> None:
    responses: list[httpx.Response] = []
    async with (
        Relay(slow_eliza.port) as relay,
        hooked_client(responses) as client,
        LlmBrain(relay.url, "eliza", API_KEY, client=client) as brain,
    ):
        async with aclosing(brain.stream("I am sad", Conversation())) as pieces:
            async for piece in pieces:
                assert piece  # the first word, forwarded while the server is still writing
                assert relay.closed == []
                break
        [response] = responses
        assert response.is_closed
        async with asyncio.timeout(5):
            await relay.first_close.wait()
        assert relay.closed[0] == "client"  # eliza-gpt still had words to send


async def test_cancelling_the_task_closes_the_http_stream(slow_eliza: Eliza) -> None:
    responses: list[httpx.Response] = []
    pieces: list[str] = []
    first = asyncio.Event()

    async def consume(brain: LlmBrain) -> None:
        async for piece in brain.stream("I am sad", Conversation()):
            pieces.append(piece)
            first.set()

    async with (
        Relay(slow_eliza.port) as relay,
        hooked_client(responses) as client,
        LlmBrain(relay.url, "eliza", API_KEY, client=client) as brain,
    ):
        task = asyncio.create_task(consume(brain))
        await first.wait()
        task.cancel()  # like the server does when the user presses Stop
        with pytest.raises(asyncio.CancelledError):
            await task
        [response] = responses
        assert response.is_closed
        async with asyncio.timeout(5):
            await relay.first_close.wait()
        assert relay.closed[0] == "client"
        assert 1 <= len(pieces) < 7


# Errors the user reads.


async def test_silence_longer_than_the_read_timeout_stops_the_reply(slow_eliza: Eliza) -> None:
    async with LlmBrain(slow_eliza.url, "eliza", API_KEY, read_timeout=0.05) as brain:
        with pytest.raises(BrainError) as raised:
            await reply(brain, "I am sad")
    assert str(raised.value) == (
        f"The language model at {slow_eliza.url} sent nothing for 0.05 s, so the reply was "
        "stopped. It may be busy, or still loading the model: try again."
    )


@pytest.mark.parametrize("api_key", ["wrong-key", ""])
async def test_wrong_or_missing_api_key_names_the_status(eliza: Eliza, api_key: str) -> None:
    async with LlmBrain(eliza.url, "eliza", api_key) as brain:
        with pytest.raises(BrainError) as raised:
            await reply(brain, "Hello")
    assert str(raised.value) == (
        f"The language model at {eliza.url} answered HTTP 401 (Unauthorized): Invalid API key. "
        "Check CHATBOT_LLM_API_KEY."
    )


async def test_wrong_url_path_names_the_status(eliza: Eliza) -> None:
    url = eliza.url.removesuffix("/v1")
    async with LlmBrain(url, "eliza", API_KEY) as brain:
        with pytest.raises(BrainError) as raised:
            await reply(brain, "Hello")
    assert str(raised.value) == (
        f"The language model at {url} answered HTTP 404 (Not Found). "
        "Check CHATBOT_LLM_URL and CHATBOT_LLM_MODEL."
    )


async def test_error_status_shows_the_servers_openai_style_message() -> None:
    head = "HTTP/1.1 404 Not Found\nContent-Type: application/json\nConnection: close"
    body = json.dumps({"error": {"message": 'model "llama9" not found, try pulling it first'}})
    async with canned_server(head, body) as server, LlmBrain(server.url, "llama9") as brain:
        with pytest.raises(BrainError) as raised:
            await reply(brain, "Hello")
    assert str(raised.value) == (
        f'The language model at {server.url} answered HTTP 404 (Not Found): model "llama9" not '
        "found, try pulling it first. Check CHATBOT_LLM_URL and CHATBOT_LLM_MODEL."
    )


async def test_error_status_without_json_body() -> None:
    head = "HTTP/1.1 502 Bad Gateway\nContent-Type: text/html\nConnection: close"
    async with canned_server(head, "<h1>Bad gateway</h1>") as server:
        async with LlmBrain(server.url, "m") as brain:
            with pytest.raises(BrainError) as raised:
                await reply(brain, "Hello")
    assert (
        str(raised.value) == f"The language model at {server.url} answered HTTP 502 (Bad Gateway)."
    )


async def test_endpoint_down_says_how_to_fix_it() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    async with LlmBrain(url, "m") as brain:
        with pytest.raises(BrainError) as raised:
            await reply(brain, "Hello")
    assert str(raised.value) == (
        f"The language model at {url} is not reachable (connection refused). "
        "Start it, or set CHATBOT_LLM_URL."
    )


async def test_malformed_stream() -> None:
    async with canned_server(SSE_HEAD, sse(chunk("Hi"), "{oops")) as server:
        async with LlmBrain(server.url, "m") as brain:
            pieces: list[str] = []
            with pytest.raises(BrainError) as raised:
                async for piece in brain.stream("Hello", Conversation()):
                    pieces.append(piece)
    assert pieces == ["Hi"]
    assert str(raised.value) == (
        f"The language model at {server.url} sent a malformed stream: expected 'data: {{json}}' "
        "lines with choices[0].delta.content, got '{oops'. Is CHATBOT_LLM_URL an "
        "OpenAI-compatible API (often ending in /v1)?"
    )


async def test_an_answer_that_is_not_an_event_stream() -> None:
    head = "HTTP/1.1 200 OK\nContent-Type: text/html\nConnection: close"
    async with canned_server(head, "<html>Welcome</html>") as server:
        async with LlmBrain(server.url, "m") as brain:
            with pytest.raises(BrainError) as raised:
                await reply(brain, "Hello")
    assert str(raised.value) == (
        f"The language model at {server.url} answered, but not with an event stream (content "
        "type text/html). Is CHATBOT_LLM_URL an OpenAI-compatible API (often ending in /v1)?"
    )


async def test_error_event_in_the_middle_of_the_stream() -> None:
    events = sse(chunk("Let me"), {"error": {"message": "CUDA out of memory"}})
    async with canned_server(SSE_HEAD, events) as server, LlmBrain(server.url, "m") as brain:
        with pytest.raises(BrainError) as raised:
            await reply(brain, "Hello")
    assert str(raised.value) == (
        f"The language model at {server.url} reported an error: CUDA out of memory."
    )


# A model server that misbehaves: the brain's limits on what it accepts.
#
# Each server below answers 200 with an event stream, then lets a ``talk`` function write the
# body for as long as it likes: it never closes first. Each test reproduces one way an endpoint
# held or flooded the chat server (issue 14, defect 6), with a deadline so that a brain without
# the limit fails the test instead of hanging it. No test measures time: the limits are small
# and the tests wait for the outcome.

DEADLINE = 10.0  # seconds: far longer than any limit below; only a brain without it gets there
CEILING = 16 * 1024 * 1024  # bytes a flooding server sends at most, to spare this machine


@dataclass
class Misbehaving:
    url: str
    hung_up: asyncio.Event = field(default_factory=asyncio.Event)  # the client closed


@asynccontextmanager
async def misbehaving_server(
    talk: Callable[[asyncio.StreamWriter], Awaitable[None]],
    head: str = SSE_HEAD.replace("Connection: close", "Cache-Control: no-cache"),
) -> AsyncIterator[Misbehaving]:
    """An HTTP server that sends ``head`` (and a blank line if it has headers), then ``talk``."""
    handlers: set[asyncio.Task[None]] = set()
    connections: set[asyncio.StreamWriter] = set()
    start = head.replace("\n", "\r\n") + ("\r\n\r\n" if "\n" in head else "\r\n")

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        connections.add(writer)
        talking = None
        try:
            await read_request(reader)
            writer.write(start.encode())
            talking = asyncio.create_task(talk(writer))
            with contextlib.suppress(ConnectionError):
                await reader.read()  # returns b"" when the client closes the connection
            served.hung_up.set()
        finally:
            if talking is not None:
                talking.cancel()
                await asyncio.gather(talking, return_exceptions=True)
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    served = Misbehaving(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1")
    try:
        yield served
    finally:
        server.close()
        for writer in connections:
            writer.transport.abort()  # so that each handler's read returns, and it ends
        await asyncio.gather(*handlers, return_exceptions=True)
        await server.wait_closed()


async def flood(writer: asyncio.StreamWriter, first: bytes, then: bytes) -> None:
    """Write ``first``, then ``then`` over and over, up to CEILING bytes in all."""
    writer.write(first)
    for _ in range(CEILING // len(then)):
        writer.write(then)
        await writer.drain()


async def no_newline(writer: asyncio.StreamWriter) -> None:
    await flood(writer, b"data: ", b"x" * 65536)


async def endless_reply(writer: asyncio.StreamWriter) -> None:
    await flood(writer, b"", sse(*[chunk("0123456789")] * 100).encode())


async def keep_alives_only(writer: asyncio.StreamWriter) -> None:
    while True:  # comments, and chunks whose delta has no text, every 20 ms
        writer.write(b": ping\n\n" + sse(chunk(), chunk("")).encode())
        await writer.drain()
        await asyncio.sleep(0.02)


def drip(piece: bytes) -> Callable[[asyncio.StreamWriter], Awaitable[None]]:
    async def talk(writer: asyncio.StreamWriter) -> None:
        while True:  # never silent for long, never done
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(0.02)

    return talk


def limited(url: str, **limits: float) -> LlmBrain:
    return LlmBrain(url, "m", **limits)


async def reply_until_error(brain: LlmBrain) -> tuple[list[str], BrainError]:
    """The pieces the brain yielded, and the error that ended its reply (within DEADLINE)."""
    pieces: list[str] = []
    with pytest.raises(BrainError) as raised:
        async with asyncio.timeout(DEADLINE):
            async for piece in brain.stream("Hello", Conversation()):
                pieces.append(piece)
    return pieces, raised.value


async def test_a_line_without_a_newline_is_refused_at_max_line_bytes() -> None:
    # Was: httpx's aiter_lines kept the line in memory until a newline came: 2.7 GB in 12 s.
    async with (
        misbehaving_server(no_newline) as server,
        limited(server.url, max_line_bytes=1000) as brain,
    ):
        pieces, error = await reply_until_error(brain)
        async with asyncio.timeout(DEADLINE):
            await server.hung_up.wait()  # the brain hung up, though the server had more
    assert pieces == []
    assert str(error) == (
        f"The language model at {server.url} sent a line longer than 1,000 bytes, so the reply "
        "was stopped. Is CHATBOT_LLM_URL an OpenAI-compatible API (often ending in /v1)?"
    )


async def test_a_line_of_exactly_max_line_bytes_is_read() -> None:
    event = sse(chunk("Hi"))  # one 'data: ...' line, then a blank line
    line_bytes = len(event.encode()) - 2
    async with canned_server(SSE_HEAD, event) as server:
        async with limited(server.url, max_line_bytes=line_bytes) as brain:
            assert await reply(brain, "Hello") == ["Hi"]
        async with limited(server.url, max_line_bytes=line_bytes - 1) as brain:
            with pytest.raises(BrainError, match=f"a line longer than {line_bytes - 1} bytes"):
                await reply(brain, "Hello")


async def test_an_endless_reply_is_cut_at_max_reply_chars() -> None:
    # Was: the reply grew as long as the server kept talking: 114 MB, stored whole.
    async with (
        misbehaving_server(endless_reply) as server,
        limited(server.url, max_reply_chars=95) as brain,
    ):
        pieces, error = await reply_until_error(brain)
        async with asyncio.timeout(DEADLINE):
            await server.hung_up.wait()
    assert "".join(pieces) == "0123456789" * 9 + "01234"  # what fits, then the message
    assert str(error) == (
        "The language model's reply was cut at 95 characters, the limit for one reply. "
        "Ask for a shorter answer."
    )


async def test_a_reply_of_exactly_max_reply_chars_is_whole() -> None:
    async with canned_server(SSE_HEAD, sse(chunk("0123456789"), "[DONE]")) as server:
        async with limited(server.url, max_reply_chars=10) as brain:
            assert await reply(brain, "count") == ["0123456789"]


@pytest.mark.parametrize("first", [b"", sse(chunk("Hel")).encode()], ids=["silent", "after-text"])
async def test_keep_alive_comments_and_empty_deltas_do_not_keep_a_reply_open(
    first: bytes,
) -> None:
    # Was: each ': ping' reset httpx's read timeout, so the reply stayed open for ever, and
    # the conversation (or the whole room) waited behind it.
    async def talk(writer: asyncio.StreamWriter) -> None:
        writer.write(first)
        await keep_alives_only(writer)

    # 1 s, not less: the timer runs from the request, and on a busy machine (CI runs two workers
    # beside another Python's tests) "Hel" came more than 0.2 s after it, so it was never read.
    async with misbehaving_server(talk) as server, limited(server.url, idle_timeout=1.0) as brain:
        pieces, error = await reply_until_error(brain)
        async with asyncio.timeout(DEADLINE):
            await server.hung_up.wait()
    assert pieces == ([] if first == b"" else ["Hel"])
    assert str(error) == (
        f"The language model at {server.url} sent no text for 1 s, so the reply was stopped. "
        "It may be overloaded: try again in a moment."
    )


@pytest.mark.parametrize(
    ("head", "talk"),
    [
        (SSE_HEAD, drip(sse(chunk(".")).encode())),  # a word every 20 ms, for ever
        ("HTTP/1.1 200 OK", drip(b"X-Slow: yes\r\n")),  # headers that never end
    ],
    ids=["text", "headers"],
)
async def test_a_slow_drip_is_stopped_at_max_reply_seconds(
    head: str, talk: Callable[[asyncio.StreamWriter], Awaitable[None]]
) -> None:
    # Was: each piece reset the read timeout, so a reply that never ended held its
    # conversation for ever.
    async with (
        misbehaving_server(talk, head) as server,
        limited(server.url, max_reply_seconds=0.5) as brain,
    ):
        pieces, error = await reply_until_error(brain)
        async with asyncio.timeout(DEADLINE):
            await server.hung_up.wait()
    assert set(pieces) <= {"."}
    assert str(error) == (
        "The language model's reply was stopped after 0.5 s, the limit for one reply. "
        "Ask for a shorter answer, or try again when the model is less busy."
    )


def test_the_limits_have_named_defaults() -> None:
    brain = LlmBrain("http://127.0.0.1:1/v1", "m")
    assert brain.max_line_bytes == DEFAULT_LLM_MAX_LINE_BYTES == 65_536
    assert brain.max_reply_chars == DEFAULT_LLM_MAX_REPLY_CHARS == 20_000
    assert brain.max_reply_seconds == DEFAULT_LLM_MAX_REPLY_SECONDS == 300
    assert brain.idle_timeout == DEFAULT_LLM_IDLE_TIMEOUT == 120


# Configuration.


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"url": "127.0.0.1:11434/v1"},
            "The language model URL must be an http:// or https:// URL like "
            "'http://127.0.0.1:11434/v1', got '127.0.0.1:11434/v1' (from the url argument). "
            "Did you mean 'http://127.0.0.1:11434/v1'?",
        ),
        (
            {"url": "ws://127.0.0.1:11434/v1"},
            "The language model URL must be an http:// or https:// URL like "
            "'http://127.0.0.1:11434/v1', got 'ws://127.0.0.1:11434/v1' (from the url argument). "
            "Check the scheme and host.",
        ),
        (
            {"url": "http://127.0.0.1:99999/v1"},
            "The language model URL is not valid (Port out of range 0-65535), got "
            "'http://127.0.0.1:99999/v1' (from the url argument). Check the host and port.",
        ),
        (
            {"url": "http://127.0.0.1:11434/v1/chat/completions"},
            "The language model URL must be the API's base URL, without /chat/completions, got "
            "'http://127.0.0.1:11434/v1/chat/completions' (from the url argument). "
            "Use 'http://127.0.0.1:11434/v1'.",
        ),
        (
            {"model": " "},
            "The language model's name must not be empty, got ' ' (from the model argument). "
            "Name a model the server has, like 'llama3.2' (`ollama list` shows Ollama's).",
        ),
        (
            {"api_key": "sk-\u2026"},
            "The API key (from the api_key argument) contains spaces or characters that cannot "
            "go in an HTTP header. Copy the key again.",
        ),
        (
            {"read_timeout": 0},
            "read_timeout must be a positive number of seconds, got 0. "
            "Leave it out for the default (60 s).",
        ),
        (
            {"connect_timeout": "5"},
            "connect_timeout must be a positive number of seconds, got '5'. "
            "Leave it out for the default (5 s).",
        ),
        (
            {"idle_timeout": -1},
            "idle_timeout must be a positive number of seconds, got -1. "
            "Leave it out for the default (120 s).",
        ),
        (
            {"max_reply_seconds": float("inf")},
            "max_reply_seconds must be a positive number of seconds, got inf. "
            "Leave it out for the default (300 s).",
        ),
        (
            {"max_line_bytes": 0},
            "max_line_bytes must be a positive whole number, got 0. "
            "Leave it out for the default (65,536).",
        ),
        (
            {"max_reply_chars": 2.5},
            "max_reply_chars must be a positive whole number, got 2.5. "
            "Leave it out for the default (20,000).",
        ),
    ],
)
def test_bad_configuration_says_what_to_change(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(LlmConfigError) as raised:
        LlmBrain(**kwargs)  # type: ignore[arg-type]
    assert str(raised.value) == message


def test_bad_environment_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHATBOT_LLM_MODEL", "")
    with pytest.raises(LlmConfigError) as raised:
        LlmBrain()
    assert str(raised.value) == (
        "The language model's name must not be empty, got '' (from CHATBOT_LLM_MODEL). "
        "Name a model the server has, like 'llama3.2' (`ollama list` shows Ollama's)."
    )


async def test_configuration_from_the_environment(
    eliza: Eliza, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHATBOT_LLM_URL", eliza.url + "/")
    monkeypatch.setenv("CHATBOT_LLM_MODEL", "eliza")
    monkeypatch.setenv("CHATBOT_LLM_API_KEY", API_KEY)
    async with LlmBrain() as brain:
        assert repr(brain) == f"<LlmBrain model='eliza' url='{eliza.url}'>"
        assert "".join(await reply(brain, "I am sad")) in SAD_REPLIES
    # Arguments win over the environment.
    async with LlmBrain(model="other", api_key="wrong") as brain:
        assert repr(brain) == f"<LlmBrain model='other' url='{eliza.url}'>"
        with pytest.raises(BrainError, match="HTTP 401"):
            await reply(brain, "I am sad")


def test_defaults_and_repr_hide_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ["CHATBOT_LLM_URL", "CHATBOT_LLM_MODEL", "CHATBOT_LLM_API_KEY"]:
        monkeypatch.delenv(variable, raising=False)
    brain = LlmBrain()
    assert repr(brain) == "<LlmBrain model='llama3.2' url='http://127.0.0.1:11434/v1'>"
    brain = LlmBrain("https://user:pw@llm.example/v1", "m", "sk-secret")
    assert repr(brain) == "<LlmBrain model='m' url='https://llm.example/v1'>"


async def test_loopback_server_is_reached_even_with_a_proxy_in_the_environment(
    eliza: Eliza, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead_proxy = f"http://127.0.0.1:{free_port()}"
    for variable in ["no_proxy", "NO_PROXY"]:
        monkeypatch.delenv(variable, raising=False)
    for variable in ["http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"]:
        monkeypatch.setenv(variable, dead_proxy)
    # A client that follows the environment goes to the proxy, and fails.
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.ConnectError):
            await client.post(f"{eliza.url}/chat/completions", json={})
    async with LlmBrain(eliza.url, "eliza", API_KEY) as brain:
        assert "".join(await reply(brain, "I am sad")) in SAD_REPLIES


async def test_aclose_leaves_a_client_passed_in_open(eliza: Eliza) -> None:
    async with httpx.AsyncClient(trust_env=False) as client:
        async with LlmBrain(eliza.url, "eliza", API_KEY, client=client) as brain:
            assert "".join(await reply(brain, "I am sad")) in SAD_REPLIES
        assert not client.is_closed
        brain = LlmBrain(eliza.url, "eliza", API_KEY)
        await brain.aclose()
        with pytest.raises(RuntimeError, match="client has been closed"):
            await reply(brain, "I am sad")  # it closed its own client


async def test_command_line_serves_the_llm_brain_from_flags_and_the_key_from_the_environment(
    eliza: Eliza, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHATBOT_LLM_API_KEY", API_KEY)
    async with chatbot_process(
        "--brain", "llm", "--llm-url", eliza.url, "--llm-model", "eliza"
    ) as server:
        assert server.first_line.startswith("Chatbot (llm) serving on ")
        async with client(server.url) as ws:
            assert await chat(ws, "I am sad") in SAD_REPLIES
