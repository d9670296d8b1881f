"""Which tests share a pytest worker: pytest runs on two (pytest-xdist, `-n 2` in pyproject.toml).

Each test file runs whole on one worker, in order: a notebook's cells share one kernel under
nbval, and a module's fixtures (a browser, a JupyterLab, a Redis) start once. Everything that
starts a server on port 8000, as a learner's notebooks 02 and 09 do, also shares one worker: two
of them at once would find the port taken, and notebook 09's stored outputs expect it free.

This file is at the repository's root so that every run finds it, `pytest notebooks/02_...`
included. ``pytest -n 0`` runs everything in one process, in order.
"""

from __future__ import annotations

from typing import Any

import pytest

PORT_8000 = (
    "notebooks/02_first-websocket-server.ipynb::",
    "notebooks/09_launch.ipynb::",
    "tests/test_jupyterlab.py::",  # Run All of every notebook, 02 and 09 among them
    "tests/test_jupyterhub.py::",  # two hub users' notebook 09
    "tests/test_browser.py::test_browser_chats_with_the_server_the_last_notebook_launched",
    "tests/test_notebooks.py::test_the_solution_passes_the_exercise_checker[02_",
    "tests/test_notebooks.py::test_the_solution_passes_the_exercise_checker[09_",
)


def worker_group(nodeid: str) -> str:
    """The tests that run together on one worker: a file's, or those that take port 8000."""
    return "port 8000" if nodeid.startswith(PORT_8000) else nodeid.split("::")[0]


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    # xdist's own `--dist loadgroup` reads `xdist_group` marks, but pytest 9.2 no longer lets it
    # rename the tests it groups (it sets `item._nodeid`): it ran a notebook's cells on both
    # workers. Its `loadscope` scheduler with our groups as its scopes does what we need.
    from xdist.scheduler import LoadScopeScheduling

    class ByGroup(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return worker_group(nodeid)

    return ByGroup(config, log)
