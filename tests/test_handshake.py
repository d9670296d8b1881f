"""The handshake under attack: DNS rebinding, repeated headers, pipelining, and the page's policy.

Each test talks to a real server on 127.0.0.1, port 0, in raw HTTP over ``asyncio.open_connection``
where a client library would refuse to send what an attacker sends (a ``Host`` of
``evil.example``, a header twice, two requests in one packet), and checks that the server's log
has nothing at ERROR: a malformed request is the client's mistake, not the server's.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import re
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from websockets.frames import Frame, Opcode

from chatbot import serve
from chatbot.server.app import Chatbot
from chatbot.server.limits import Limits
from chatbot.server.web import page
from tests.helpers import chatbot_process

KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455's sample key: any 16 bytes, base64


@asynccontextmanager
async def quiet_server(
    caplog: pytest.LogCaptureFixture, **limits: object
) -> AsyncIterator[Chatbot]:
    """A server on 127.0.0.1:0; on the way out, check that nothing was logged at ERROR."""
    caplog.set_level(logging.DEBUG)
    async with serve(port=0, limits=Limits(**limits)) as server:  # type: ignore[arg-type]
        yield server
    errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert not errors, "logged at ERROR:\n" + "\n".join(r.getMessage() for r in errors)


def handshake(host: str | None, *extra: str, path: str = "/") -> bytes:
    """A WebSocket handshake request, as a browser sends it, with ``extra`` header lines."""
    lines = [f"GET {path} HTTP/1.1"]
    if host is not None:
        lines.append(f"Host: {host}")
    lines += [
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {KEY}",
        "Sec-WebSocket-Version: 13",
        *extra,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def get(path: str, host: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()


async def exchange(port: int, data: bytes) -> bytes:
    """Send ``data`` in one write; return everything the server sends until it closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        async with asyncio.timeout(10):
            return await reader.read()
    finally:
        writer.close()


async def response_head(port: int, data: bytes) -> tuple[int, str]:
    """Send ``data``; return the status and the head of the response (a 101 stays open)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        async with asyncio.timeout(10):
            head = (await reader.readuntil(b"\r\n\r\n")).decode()
        return int(head.split()[1]), head
    finally:
        writer.close()


def status_and_body(response: bytes) -> tuple[int, str]:
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode()


# 5. DNS rebinding: the Host header names the server, or the request is refused.


async def test_a_rebinding_page_is_refused_with_403_that_says_how_to_allow_its_name(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with quiet_server(caplog) as server:
        evil = f"evil.example:{server.port}"
        # The page's origin and the Host agree: the origin check alone let this through.
        refused = await exchange(server.port, handshake(evil, f"Origin: http://{evil}"))
        status, body = status_and_body(refused)
        assert status == 403, refused
        assert body == (
            f"Host {evil} is not a name this server answers to (a page on another site, "
            "through DNS rebinding?). If it is this machine's name, start the server with "
            "--allow-host evil.example (in Python: Limits(allowed_hosts=('evil.example',))).\n"
        )
        # The page and /readyz too: nothing is answered to a name the server does not have.
        for path in ("/", "/readyz"):
            status, _ = status_and_body(await exchange(server.port, get(path, evil)))
            assert status == 403, path


@pytest.mark.parametrize(
    "name",
    ["127.0.0.1", "localhost", "LocalHost", "[::1]", "localhost.", "192.168.1.23", "[fe80::1]"],
)
async def test_loopback_names_and_ip_addresses_are_answered(
    caplog: pytest.LogCaptureFixture, name: str
) -> None:
    # An address cannot be rebound: a page at http://192.168.1.23:8000/ is on that machine.
    async with quiet_server(caplog) as server:
        host = f"{name}:{server.port}"
        status, _ = await response_head(server.port, handshake(host, f"Origin: http://{host}"))
        assert status == 101


async def test_allow_host_admits_a_name_and_a_request_without_host_is_not_a_browser(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with quiet_server(caplog, allowed_hosts=("Chat.Example.org",)) as server:
        for host, origin in [
            ("chat.example.org", "https://chat.example.org"),  # behind nginx: Host $host
            (f"CHAT.example.org:{server.port}", f"http://chat.example.org:{server.port}"),
            (None, None),  # not a browser
        ]:
            extra = () if origin is None else (f"Origin: {origin}",)
            status, _ = await response_head(server.port, handshake(host, *extra))
            assert status == 101, host
        status, _ = status_and_body(await exchange(server.port, handshake("evil.example")))
        assert status == 403


async def test_on_a_hub_the_proxy_forwards_the_hub_name_and_it_is_answered(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # jupyter-server-proxy copies the browser's Host (the hub's name) to the server it proxies;
    # there the browser is not on this machine, so a rebinding page could not reach it.
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "/user/ada/")
    async with quiet_server(caplog) as server:
        hub = "Origin: https://hub.example"
        status, _ = await response_head(server.port, handshake("hub.example", hub))
        assert status == 101


def test_the_names_a_server_answers_to_follow_where_it_listens(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from chatbot.server.web import served_names

    monkeypatch.delenv("JUPYTERHUB_SERVICE_PREFIX", raising=False)
    assert served_names("127.0.0.1") == ()
    assert served_names("chat.lan") == ("chat.lan",)
    machine = socket.gethostname().lower()
    for everywhere in ("0.0.0.0", "::", ""):
        assert machine in served_names(everywhere), everywhere
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "/user/ada/")
    assert served_names("127.0.0.1") == ("*",)


# 10. A header that must come once, twice: 400 and a clear text, no traceback.


@pytest.mark.parametrize("header", ["Host", "Origin", "Upgrade"])
async def test_a_repeated_header_is_answered_400(
    caplog: pytest.LogCaptureFixture, header: str
) -> None:
    async with quiet_server(caplog) as server:
        again = {
            "Host": f"Host: 127.0.0.1:{server.port}",
            "Origin": "Origin: http://127.0.0.1",
            "Upgrade": "Upgrade: websocket",
        }[header]
        lines = [again] if header != "Origin" else ["Origin: http://127.0.0.1", again]
        request = handshake(f"127.0.0.1:{server.port}", *lines)
        status, body = status_and_body(await exchange(server.port, request))
    assert status == 400
    assert body == (
        f"Bad request: 2 {header} headers, and a request has one at most. Send it once.\n"
    )


# 11. Two requests in one packet: the first is answered, the connection closed, no traceback.


@pytest.mark.parametrize("path", ["/healthz", "/", "/nope"])
async def test_two_pipelined_requests_get_the_first_answer_and_a_clean_close(
    caplog: pytest.LogCaptureFixture, path: str
) -> None:
    async with quiet_server(caplog) as server:
        host = f"127.0.0.1:{server.port}"
        response = await exchange(server.port, get(path, host) + get("/healthz", host))
    assert response.count(b"HTTP/1.1 ") == 1, response
    assert response.startswith(b"HTTP/1.1 ")
    expected = {"/healthz": 200, "/": 200, "/nope": 404}[path]
    assert status_and_body(response)[0] == expected


async def test_a_handshake_then_a_request_in_one_packet_opens_then_fails_cleanly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with quiet_server(caplog) as server:
        host = f"127.0.0.1:{server.port}"
        response = await exchange(server.port, handshake(host) + get("/", host))
    # The handshake succeeds; the bytes after it are no WebSocket frame: 1002, then the end.
    assert response.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    close = response.partition(b"\r\n\r\n")[2]
    assert close[:1] == b"\x88" and close[2:4] == (1002).to_bytes(2, "big"), close


async def test_a_frame_sent_with_the_handshake_is_read_after_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Too early by the RFC, but harmless: the server answers it once the handshake is done.
    async with quiet_server(caplog) as server:
        frame = Frame(Opcode.TEXT, b"early bird").serialize(mask=True, extensions=[])
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        try:
            writer.write(handshake(f"127.0.0.1:{server.port}") + frame)
            async with asyncio.timeout(10):
                head = await reader.readuntil(b"\r\n\r\n")
                reply = await reader.readexactly(2 + len("early bird"))
        finally:
            writer.close()
    assert head.startswith(b"HTTP/1.1 101 ")
    assert reply == b"\x81\x0aearly bird"


# 12. The page: a Content-Security-Policy, and frames only from the origins the server trusts.


def inline(tag: str) -> str:
    """The hash of the page's one inline ``<tag>``, as a CSP source."""
    text = page().decode()
    body = re.search(rf"<{tag}>(.*?)</{tag}>", text, re.DOTALL)
    assert body is not None
    digest = hashlib.sha256(body.group(1).encode()).digest()
    return f"'sha256-{base64.b64encode(digest).decode()}'"


def directives(head: str) -> dict[str, str]:
    policy = re.search(r"(?im)^content-security-policy: (.*?)\r$", head)
    assert policy is not None, head
    return {
        name: value.strip()
        for name, _, value in (part.strip().partition(" ") for part in policy.group(1).split(";"))
    }


async def test_the_page_has_a_content_security_policy_without_unsafe_inline(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with quiet_server(caplog) as server:
        host = f"127.0.0.1:{server.port}"
        for method in ("GET", "HEAD"):
            request = f"{method} / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
            head = (await exchange(server.port, request)).partition(b"\r\n\r\n")[0].decode()
            policy = directives(head + "\r\n")
            assert policy["default-src"] == "'none'"
            assert policy["script-src"] == inline("script")
            assert policy["style-src"] == inline("style")
            assert policy["connect-src"] == "'self'"
            assert policy["base-uri"] == policy["form-action"] == "'none'"
            assert policy["frame-ancestors"] == ("'self' localhost:* 127.0.0.1:*")
            assert "unsafe" not in head
            assert "x-frame-options" not in head.lower()  # it cannot say "these origins"


async def test_frame_ancestors_are_the_allowed_origins_and_nothing_else(
    caplog: pytest.LogCaptureFixture,
) -> None:
    origins = ("https://hub.example", "http://127.0.0.1:8888")
    async with quiet_server(caplog, allowed_origins=origins) as server:
        head = (await exchange(server.port, get("/", f"127.0.0.1:{server.port}"))).decode("latin-1")
    assert directives(head.partition("\r\n\r\n")[0] + "\r\n")["frame-ancestors"] == (
        "'self' localhost:* 127.0.0.1:* https://hub.example http://127.0.0.1:8888"
    )


async def test_an_origin_that_would_break_the_policy_is_refused_at_start() -> None:
    broken = Limits(allowed_origins=("https://a.example; script-src *",))
    with pytest.raises(
        ValueError, match=re.escape("--allow-origin 'https://a.example; script-src")
    ):
        async with serve(port=0, limits=broken):
            pass


async def test_the_command_line_allows_a_host_with_allow_host() -> None:
    args = ("--brain", "echo", "--allow-host", "chat.example.org", "--allow-host", "chat.lan")
    async with chatbot_process(*args) as server:
        port = int(server.http_url.rstrip("/").rsplit(":", 1)[1])
        for name in ("chat.example.org", "chat.lan"):
            status, _ = await response_head(port, handshake(name, f"Origin: http://{name}"))
            assert status == 101, name
        refused = await exchange(port, get("/", "evil.example"))
        assert status_and_body(refused)[0] == 403
        server.process.terminate()
        await server.process.wait()
