"""``python -m chatbot``: its options, its address line, and a clean exit on signals."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import signal
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from chatbot.brains.base import load_brain
from chatbot.cli import GC_YOUNG, build_parser, listen, main, tune_gc
from chatbot.errors import PortInUseError
from tests.helpers import (
    ServerProcess,
    chat,
    chatbot_process,
    client,
    run_chatbot,
    without_modules,
)
from tests.jsonclient import json_client


def test_help_lists_the_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: python -m chatbot ")
    for option in ["--host HOST", "--port PORT", "--brain NAME", "--log-level"]:
        assert option in out


def test_defaults_are_loopback_port_8000_and_the_assistant() -> None:
    args = build_parser().parse_args([])
    assert (args.host, args.port, args.brain) == ("127.0.0.1", 8000, "assistant")


def test_tune_gc_collects_young_objects_less_often_and_keeps_the_older_thresholds() -> None:
    before = gc.get_threshold()
    load_brain("assistant")  # alive at start-up, as in `python -m chatbot`
    try:
        tune_gc()
        young, middle, old = gc.get_threshold()
        assert young == max(before[0], GC_YOUNG)
        assert (middle, old) == before[1:]
        assert gc.isenabled()  # less often, never off
        # What start-up made is out of every collection: a full one finds only what came after.
        assert gc.get_freeze_count() > 10_000
        assert len(gc.get_objects()) < gc.get_freeze_count()
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()


def test_a_notebook_launch_leaves_the_kernels_collector_alone() -> None:
    # Only the command line owns its process; importing the package changes nothing.
    code = "import gc; t = gc.get_threshold(); import chatbot.cli, chatbot.workshop.launch; "
    code += "assert gc.get_threshold() == t, (t, gc.get_threshold())"
    command = [sys.executable, "-c", code]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_unknown_brain_is_refused_with_the_choices(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--brain", "oracle"]) == 2
    assert capsys.readouterr().err == (
        "error: unknown brain 'oracle': expected one of echo, rules, eliza, faq, llm, "
        "assistant, or 'module:attribute' naming your own\n"
    )


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_signal_closes_clients_with_1001_and_exits_0(signum: signal.Signals) -> None:
    async with chatbot_process("--brain", "echo") as server:
        assert server.first_line == f"Chatbot (echo) serving on {server.http_url}"
        async with client(server.url) as ws:
            assert await chat(ws, "hello") == "hello"
            server.process.send_signal(signum)
            await ws.wait_closed()
            assert ws.close_code == 1001
        assert await server.process.wait() == 0


async def test_port_in_use_is_a_clear_error_and_exit_status_1() -> None:
    async with chatbot_process() as first:
        port = first.http_url.rstrip("/").rsplit(":", 1)[1]
        status, out, err = await run_chatbot("--port", port)
    assert status == 1
    assert out == ""
    assert err.endswith(
        f"error: cannot listen on 127.0.0.1:{port}: the port is in use; choose another with "
        "--port (0 picks any free port)\n"
    )


async def test_a_taken_port_is_a_port_in_use_error_that_says_what_to_do() -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        with pytest.raises(PortInUseError) as caught:
            await listen(load_brain("echo"), "127.0.0.1", squatter.getsockname()[1])
    assert caught.value.errno == errno.EADDRINUSE
    assert caught.value.strerror == (
        "the port is in use; choose another with --port (0 picks any free port)"
    )


async def test_websockets_interactive_client_can_chat() -> None:
    # The public contract: `python -m websockets ws://H:P/` chats with `python -m chatbot`.
    async with chatbot_process("--brain", "echo") as server:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "websockets",
            server.url,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(b"hello from a terminal\n")
        await process.stdin.drain()
        output = ""
        while "< hello from a terminal\n" not in output:  # the reply, between ANSI escapes
            async with asyncio.timeout(10):
                chunk = (await process.stdout.read(1024)).decode()
            assert chunk, f"the client ended without the reply: {output!r}"
            output += chunk
        process.stdin.close()  # end of input: the client closes the connection and exits
        assert await process.wait() == 0
    assert output.startswith(f"Connected to {server.url}.\n")


async def test_brain_eliza_replays_the_cacm_conversation_over_a_real_websocket() -> None:
    # Done-when of the response-generation issue: `python -m chatbot --brain eliza` replays the
    # conversation printed in Weizenbaum's 1966 paper, exchange for exchange.
    from tests.test_eliza import CACM_1966

    async with chatbot_process("--brain", "eliza") as server:
        assert server.first_line.startswith("Chatbot (eliza) serving on ")
        async with client(server.url) as ws:
            replies = [await chat(ws, said) for said, _ in CACM_1966]
    assert replies == [expected for _, expected in CACM_1966]
    assert len(replies) == 15


async def test_default_brain_is_the_assistant_and_answers_offline() -> None:
    async with chatbot_process() as server:
        assert server.first_line.startswith("Chatbot (assistant) serving on ")
        async with client(server.url) as ws:
            assert (await chat(ws, "hello")).startswith("Hello! I'm the workshop's chatbot.")
            assert "Is it because you are" in await chat(ws, "I am tired of waiting")


def test_console_script_is_installed_next_to_python() -> None:
    import shutil
    import subprocess
    from pathlib import Path

    script = shutil.which("chatbot", path=str(Path(sys.executable).parent))
    assert script is not None, "pip install should have created the `chatbot` command"
    result = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert result.stdout.startswith("usage: python -m chatbot ")


async def test_limits_from_the_command_line() -> None:
    from websockets.exceptions import InvalidStatus

    args = ("--brain", "echo", "--max-connections", "1", "--rate", "1", "--burst", "2")
    async with chatbot_process(*args) as server, client(server.url) as ws:
        with pytest.raises(InvalidStatus) as refused:
            await client(server.url)
        assert refused.value.response.status_code == 503
        replies = [await chat(ws, f"m{n}") for n in range(3)]
    assert replies[:2] == ["m0", "m1"]
    assert replies[2].startswith("Slow down: at most 1 messages per second.")


async def test_connections_per_address_behind_a_trusted_proxy() -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus

    args = ("--brain", "echo", "--max-connections-per-address", "1", "--trusted-proxy", "127.0.0.1")
    forwarded = {"X-Forwarded-For": "203.0.113.7"}  # a header value: the test stays on loopback
    async with (
        chatbot_process(*args) as server,
        connect(server.url, additional_headers=forwarded, proxy=None) as ws,
    ):
        with pytest.raises(InvalidStatus) as refused:
            await connect(server.url, additional_headers=forwarded, proxy=None)
        assert refused.value.response.status_code == 429
        async with connect(server.url, proxy=None) as mine:  # this machine: not limited
            assert await chat(mine, "hi") == "hi"
        assert await chat(ws, "still here") == "still here"


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (
            ["--trusted-proxy", "nonsense"],
            "error: --trusted-proxy 'nonsense' is not an address or a network like 127.0.0.1 "
            "or 10.0.0.0/8\n",
        ),
        (
            ["--allow-origin", "nonsense;"],
            "error: --allow-origin 'nonsense;' is not an origin like https://hub.example\n",
        ),
    ],
)
def test_a_bad_proxy_or_origin_is_refused_in_a_sentence(
    option: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*option, "--port", "0"]) == 2
    assert capsys.readouterr().err == message


async def stop_and_read_log(server: ServerProcess) -> str:
    server.process.send_signal(signal.SIGTERM)
    assert server.process.stderr is not None
    log = (await server.process.stderr.read()).decode()
    assert await server.process.wait() == 0
    return log


@pytest.mark.skipif(sys.platform == "win32", reason="uvloop does not run on Windows")
async def test_runs_on_uvloop_when_installed_and_logs_it() -> None:
    uvloop = pytest.importorskip("uvloop")
    assert uvloop.__name__ == "uvloop"  # requirements.txt installs it on Linux and macOS
    async with chatbot_process("--brain", "echo") as server:
        async with client(server.url) as ws:
            assert await chat(ws, "fast?") == "fast?"
        log = await stop_and_read_log(server)
    assert "INFO chatbot.cli: event loop: uvloop " in log


@pytest.mark.parametrize(
    ("args", "python"),
    [
        (("--loop", "asyncio"), None),  # asked for
        ((), without_modules("uvloop")),  # uvloop not installed (Windows, say)
    ],
    ids=["--loop asyncio", "without uvloop"],
)
async def test_runs_on_asyncio_without_uvloop(args: tuple[str, ...], python: list[str]) -> None:
    async with chatbot_process("--brain", "echo", *args, python=python) as server:
        async with client(server.url) as ws:
            assert await chat(ws, "plain?") == "plain?"
        log = await stop_and_read_log(server)
    assert "INFO chatbot.cli: event loop: asyncio\n" in log


async def test_loop_uvloop_without_uvloop_is_a_clear_error() -> None:
    status, out, err = await run_chatbot(
        "--loop", "uvloop", "--port", "0", python=without_modules("uvloop")
    )
    assert status == 1
    assert out == ""
    assert err.endswith(
        "error: --loop uvloop: uvloop is not installed; `pip install uvloop` (not on Windows), "
        "or use --loop asyncio\n"
    )


def test_a_session_ttl_that_is_not_positive_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--session-ttl", "0"])
    assert exited.value.code == 2
    assert (
        "argument --session-ttl: '0' is not a positive number of seconds" in capsys.readouterr().err
    )


async def test_session_ttl_from_the_command_line_expires_idle_sessions(tmp_path: Path) -> None:
    # A session used once, then (the clock moved by hand, in the file) idle for two hours: a
    # server started with --session-ttl 3600 deletes it when it opens the file; the default
    # (30 days) keeps it. No waiting: the store expires idle sessions as it opens.
    db = str(tmp_path / "chat.sqlite3")
    async with chatbot_process("--brain", "echo", "--db", db) as server:
        async with json_client(server.url) as ada:
            await ada.say("hello", id="m1")
            session = ada.session

    def two_hours_idle() -> None:
        with contextlib.closing(sqlite3.connect(db)) as connection, connection:
            connection.execute("UPDATE conversations SET used = used - 7200")

    async def resumed(*options: str) -> str:
        async with chatbot_process("--brain", "echo", "--db", db, *options) as server:
            async with json_client(server.url) as ws:
                await ws.send({"type": "resume", "session": session, "id": "r"})
                answer = await ws.recv()
                return str(answer["type"] if answer["type"] != "error" else answer["code"])

    two_hours_idle()
    assert await resumed() == "history"  # 2 hours idle: well within 30 days (a resume is a use)
    two_hours_idle()
    assert await resumed("--session-ttl", "3600") == "unknown_session"
