"""Run ``async def`` tests in a fresh event loop each, with a deadline, without a plugin."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import pytest

TEST_DEADLINE = 60.0  # seconds; a hung test fails with TimeoutError instead of hanging CI


async def _with_deadline(test: Any, kwargs: dict[str, Any]) -> None:
    async with asyncio.timeout(TEST_DEADLINE):
        await test(**kwargs)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    names = pyfuncitem._fixtureinfo.argnames
    asyncio.run(_with_deadline(pyfuncitem.obj, {name: pyfuncitem.funcargs[name] for name in names}))
    return True

# A real redis-server for the tests of the shared backend (tests/redis_server.py).
from tests.redis_server import backend, redis_prefix, redis_server, redis_url  # noqa: E402, F401
