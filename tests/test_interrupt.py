"""Interrupt (the kernel's own API, as JupyterLab's ■ button) stops a cell that awaits.

ipykernel 7 cancels a cell that awaits at top level from its SIGINT handler with a plain
``call_soon``, which does not wake an event loop asleep in ``select``: without help, the cell
goes on until something else wakes the loop. ``wake_on_interrupt()`` (notebook 01, called in
every notebook's first cell) gives the loop a wake-up socket. These tests start a real kernel
with jupyter_client, run that first cell, then a cell that awaits for ten minutes, interrupt it,
and wait (bounded) for the cell's error.
"""

from __future__ import annotations

import os
import queue
from collections.abc import Iterator
from typing import Any

import pytest
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager

from tests.helpers import ROOT

SETUP = "from chatbot.workshop.exercises import wake_on_interrupt\n\nwake_on_interrupt()\n"
WAITING = 'import asyncio\n\nprint("waiting", flush=True)\nawait asyncio.sleep(600)\n'
REPLY_TIMEOUT = 30.0  # seconds: a kernel reply on a busy machine, far below the cell's 600 s


@pytest.fixture
def kernel() -> Iterator[tuple[KernelManager, BlockingKernelClient]]:
    manager = KernelManager(kernel_name="python3")
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("PYTHONWARNINGS", None)  # error::DeprecationWarning kills the kernel at start-up
    manager.start_kernel(cwd=str(ROOT / "notebooks"), env=env)
    client = manager.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=60)
        yield manager, client
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def run(client: BlockingKernelClient, code: str) -> dict[str, Any]:
    """Run ``code`` and return its execute reply's content (ok, or the error's name)."""
    msg_id = client.execute(code)
    return reply_to(client, msg_id)


def reply_to(client: BlockingKernelClient, msg_id: str) -> dict[str, Any]:
    while True:
        try:
            message = client.get_shell_msg(timeout=REPLY_TIMEOUT)
        except queue.Empty:
            raise AssertionError(f"the kernel did not answer within {REPLY_TIMEOUT:g} s") from None
        if message["parent_header"].get("msg_id") == msg_id:
            return dict(message["content"])


def start_waiting(client: BlockingKernelClient) -> str:
    """Start the ten-minute cell; return once it prints that it is waiting (so it is awaiting).

    The cell is sent with ``stop_on_error=False``: after a cell's error, ipykernel aborts the
    requests that reach it before it posts itself a "stop aborting" message, so a request sent
    as soon as the error's reply arrives was sometimes aborted on a busy machine (the next
    ten-minute cell never started, or the last cell's status was "aborted"). JupyterLab's Run
    All wants that; this test wants each cell to run.
    """
    msg_id = client.execute(WAITING, stop_on_error=False)
    while True:
        message = client.get_iopub_msg(timeout=REPLY_TIMEOUT)
        if message["parent_header"].get("msg_id") != msg_id:
            continue
        if message["msg_type"] == "stream" and "waiting" in message["content"]["text"]:
            return str(msg_id)
        assert message["msg_type"] != "error", message["content"]
        idle = message["msg_type"] == "status" and message["content"]["execution_state"] == "idle"
        assert not idle, "the cell ended before it printed 'waiting'"


def test_interrupt_stops_a_cell_that_awaits(
    kernel: tuple[KernelManager, BlockingKernelClient],
) -> None:
    manager, client = kernel
    assert run(client, SETUP)["status"] == "ok"
    again = "first = signal.set_wakeup_fd(-1)\nsignal.set_wakeup_fd(first)\nwake_on_interrupt()\n"
    reply = run(client, f"import signal\n{again}assert signal.set_wakeup_fd(first) == first != -1")
    assert reply["status"] == "ok", reply  # a second call changed nothing
    for _time in ("first", "second"):  # the wake-up socket is drained: it works again
        msg_id = start_waiting(client)
        manager.interrupt_kernel()  # what JupyterLab's Interrupt button asks for
        reply = reply_to(client, msg_id)  # within REPLY_TIMEOUT, not the cell's ten minutes
        assert reply["status"] == "error", reply
        assert reply["ename"] in {"CancelledError", "KeyboardInterrupt"}, reply
    assert run(client, "print('the kernel still runs cells')")["status"] == "ok"
