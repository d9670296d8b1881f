"""Run ``async def`` tests in a fresh event loop each, with a deadline, without a plugin."""

from __future__ import annotations

import asyncio
import inspect
import os
from typing import Any

import pytest

# A $CHATBOT_REDIS in the developer's shell would turn every `python -m chatbot` the tests start
# into a Redis one: the tests that want Redis pass it themselves.
os.environ.pop("CHATBOT_REDIS", None)

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
from tests.redis_server import (  # noqa: E402
    MISSING,
    backend,  # noqa: F401
    redis_executable,
    redis_prefix,  # noqa: F401
    redis_required,
    redis_server,  # noqa: F401
    redis_url,  # noqa: F401
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Notebook 08 starts its own redis-server: without one (and outside CI), skip it, saying why,
    # as the fixture does for the Redis tests.
    if redis_executable() is not None or redis_required():
        return
    for item in items:
        runs_it = item.nodeid.startswith("notebooks/") or "run_all_in_jupyterlab" in item.nodeid
        if "08_scale-out" in item.nodeid and runs_it:
            item.add_marker(pytest.mark.skip(reason=MISSING))
