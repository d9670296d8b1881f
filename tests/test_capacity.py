"""benchmarks/capacity.py and lag.py in smoke mode: a real server, real clients, real processes.

Memory per connection is asserted within wide bounds (it is not a time: the machine's load does
not move it); the loop's lag is a time, so it is reported and never asserted.
"""

from __future__ import annotations

import asyncio
import gc
import json
import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path
from typing import Any

from chatbot import serve
from chatbot.server.limits import Limits

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "benchmarks"
SMOKE_TIMEOUT = 120  # seconds; each smoke run takes about five


def smoke(script: str, out: Path) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / f"{script}.py"), "--smoke", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=SMOKE_TIMEOUT,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result, json.loads((out / f"{script}-smoke.json").read_text())


def test_idle_connections_cost_the_server_tens_of_kib_each(tmp_path: Path) -> None:
    result, report = smoke("capacity", tmp_path)
    assert report["opened"] == report["connections"] == 300
    assert report["closed"] == 300
    assert report["errors"] == {}
    assert report["server_exit_status"] == 0
    assert report["rss_start_bytes"] < report["rss_warm_bytes"] < report["rss_all_bytes"]
    # Measured: 16 to 17 KiB (26 to 28 before the lazy outbox). 64 KiB is what websockets'
    # default compression alone costs per connection: a server that turned it back on, or kept a
    # buffer per connection, crosses it.
    assert 4 < report["kib_per_connection"] < 64
    assert "300 idle connections: " in result.stdout


# Opens COUNT chatbot.v1 connections, reads each welcome, says "ready", and waits for a line.
IDLE_CLIENTS = textwrap.dedent(
    """
    import asyncio, json, sys
    from websockets.asyncio.client import connect

    async def main(url, count):
        opened = []
        for _ in range(count):
            connection = await connect(url, subprotocols=["chatbot.v1"], compression=None)
            assert json.loads(await connection.recv())["type"] == "welcome"
            opened.append(connection)
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)

    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
    """
)


async def test_an_idle_connection_holds_under_19_kib_of_python_objects_in_the_server() -> None:
    # The smoke run above measures the whole process, too roughly to hold to the README's 20 KiB
    # (it grew to 20.9 KiB and nothing noticed). Python's own allocations, counted by tracemalloc
    # with the clients in another process, are steady to 50 bytes: 17.6 KiB on Python 3.11 and
    # 18.3 KiB on 3.13 in session 21, about 1.4 KiB under what the process grows by. The tree of
    # 20.9 KiB held 19.2 KiB of them: it fails here.
    count = 200
    limits = Limits(max_connections=1000, max_connections_per_address=1000)
    async with serve(port=0, limits=limits) as server:
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            clients = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                IDLE_CLIENTS,
                server.url,
                str(count),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
            )
            assert clients.stdout is not None and clients.stdin is not None
            assert await clients.stdout.readline() == b"ready\n"
            assert server.connections == count
            gc.collect()
            held = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        clients.stdin.write(b"\n")
        await clients.stdin.drain()
        assert await clients.wait() == 0
    assert 4 * 1024 < held / count < 19 * 1024, f"{held / count:.0f} bytes per idle connection"


def test_lag_is_measured_inside_the_server_while_a_client_burns_cpu(tmp_path: Path) -> None:
    result, report = smoke("lag", tmp_path)
    [run] = report["runs"]
    assert run["offload"] == "process"
    assert run["server_exit_status"] == 0
    assert run["failed"] == 0
    assert run["burns"] > 0
    assert run["chat_replies"] > 0
    assert run["lag_samples"] > 0
    assert run["lag_ms"]["p50"] <= run["lag_ms"]["p99"] <= run["lag_ms"]["max"]
    assert result.stdout.startswith("offload  lag p50 ms")
