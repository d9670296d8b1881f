"""The event log: bounded, displayable, and awaitable without sleeps."""

from __future__ import annotations

import asyncio

import pytest

from chatbot import EventLog
from chatbot.events import Event


async def test_wait_for_returns_an_event_already_logged() -> None:
    log = EventLog()
    event = log.record("open", 1, "/")
    assert await log.wait_for("open") is event


async def test_wait_for_wakes_when_the_event_arrives() -> None:
    log = EventLog()
    waiter = asyncio.create_task(log.wait_for("close", client=2))
    await asyncio.sleep(0)
    log.record("close", 1, "1000 (OK)")
    await asyncio.sleep(0)
    assert not waiter.done()  # another client's close
    expected = log.record("close", 2, "1001 (going away)")
    assert await waiter is expected


async def test_wait_for_times_out_with_timeout_error() -> None:
    with pytest.raises(TimeoutError):
        await EventLog().wait_for("open", timeout=0.01)


def test_log_is_bounded_but_counts_everything() -> None:
    log = EventLog(maxlen=3)
    for n in range(10):
        log.record("message", 1, str(n))
    assert [e.detail for e in log] == ["7", "8", "9"]
    assert (len(log), log.total) == (3, 10)
    assert log.tail(2) == [Event("message", 1, "8"), Event("message", 1, "9")]


def test_log_displays_one_line_per_event() -> None:
    log = EventLog()
    assert str(log) == "(no events yet)"
    log.record("open", 12, "/")
    log.record("close", 12, "1000 (OK)")
    assert str(log) == "client 12  open     /\nclient 12  close    1000 (OK)"
    assert repr(log) == "<EventLog: 2 events>"
    log.clear()
    assert (len(log), log.total) == (0, 2)
