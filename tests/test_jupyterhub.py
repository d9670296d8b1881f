"""The workshop on a real JupyterHub: two users, notebook 09 run with JupyterLab's Run All.

JupyterHub (PyPI) with its proxy, configurable-http-proxy (npm; ``.ci/run`` installs it), runs
the recipe of docs/instructors.md (``tests/hub_recipe.py``) on 127.0.0.1 with free ports, in a
temporary folder, with the spawner that starts each user's JupyterLab as a local process. In
Chromium, the instructor and a learner each log in, open notebook 09 in their JupyterLab, click
Run > Run All Cells, and chat on the page in the notebook's IFrame and at the hub's
``/user/NAME/proxy/PORT/`` address: each has their own server, port and conversation. Then the
learner opens the instructor's chatbot (the recipe lets every user in), and both chat in one
room. Every wait waits for a log line or for something on a page, bounded; the hub, the proxy and
both users' servers are stopped whatever happens.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.helpers import ROOT
from tests.hub_recipe import INSTRUCTOR_PASSWORD, RECIPE, ROOM_PASSWORD, local_settings
from tests.jupyter_ui import (
    START_TIMEOUT,
    WAIT,
    ServerProcess,
    chat,
    chat_frame,
    chromium,
    connected,
    errors_shown,
    finish_run_all,
    free_port,
    jupyter_env,
    needs_chromium,
    opened,
    start_run_all,
    workshop_copy,
)

PROXY = shutil.which("configurable-http-proxy")
DOCS = ROOT / "docs" / "instructors.md"

needs_proxy = pytest.mark.skipif(
    PROXY is None and not os.environ.get("CI"),
    reason="no configurable-http-proxy: `npm install -g configurable-http-proxy` (Node 20+)",
)


def test_the_instructors_guide_shows_the_tested_recipe() -> None:
    guide = DOCS.read_text()
    assert f"```python\n{RECIPE}```" in guide, (
        "docs/instructors.md does not show tests/hub_recipe.py's RECIPE: run "
        "`python tools/hub_recipe.py`"
    )


def start_hub(folder: Path) -> tuple[ServerProcess, str]:
    """JupyterHub with the recipe on free loopback ports; returns it and its URL."""
    hub_port, api_port, proxy_api_port = free_port(), free_port(), free_port()
    workshop = folder / "workshop"
    workshop_copy(workshop)
    args = ["--allow-root"] if os.geteuid() == 0 else []
    # Each user's Jupyter folders are in their home (the spawner sets HOME to it); all share the
    # test's JupyterLab settings (every cell drawn, no news).
    shared = jupyter_env(folder / "jupyter")
    environment = {
        name: shared[name] for name in ("JUPYTERLAB_SETTINGS_DIR", "PYTHONDONTWRITEBYTECODE")
    }
    config = folder / "jupyterhub_config.py"
    config.write_text(
        RECIPE
        + local_settings(
            workshop=str(workshop),
            homes=str(folder / "homes"),
            folder=str(folder),
            hub_port=hub_port,
            api_port=api_port,
            proxy_api_port=proxy_api_port,
            environment=environment,
            args=args,
        )
    )
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": os.pathsep.join([bin_dir, os.environ.get("PATH", "")])}
    env.pop("JUPYTERHUB_SERVICE_PREFIX", None)
    hub = ServerProcess(
        [str(Path(bin_dir) / "jupyterhub"), "-f", str(config)],
        cwd=folder,
        env=env,
        log=folder / "jupyterhub.log",
    )
    return hub, f"http://127.0.0.1:{hub_port}/"


def stop_everything_in(folder: Path) -> None:
    """Kill every process working in ``folder`` (its current directory is in it)."""
    for process in psutil.process_iter(["cwd"]):
        cwd = process.info.get("cwd")
        if cwd and Path(cwd).is_relative_to(folder):
            try:
                process.kill()
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[str]:
    server, url = start_hub(tmp_path)
    try:
        server.wait_for_line(r"JupyterHub is now running at")
        yield url
    finally:
        # Everything at once (the hub, its proxy, the users' servers, their kernels and the
        # chatbots in them all work in tmp_path): a graceful stop of each takes seconds.
        stop_everything_in(tmp_path)
        server.stop()


def log_in(context: BrowserContext, hub: str, name: str, password: str) -> Page:
    """Fill in the hub's login form and submit it; the hub starts the user's JupyterLab.

    Returns at once (two users' servers start side by side): :func:`logged_in` waits.
    """
    page = context.new_page()
    page.set_default_timeout(WAIT)
    page.goto(f"{hub}hub/login")
    page.locator("#username_input").fill(name)
    page.locator("#password_input").fill(password)
    page.locator("#login_submit").click()
    return page


def logged_in(page: Page, name: str) -> None:
    page.wait_for_url(re.compile(rf"/user/{name}/lab"), timeout=START_TIMEOUT * 1000)


def ran_notebook_09(page: Page, name: str, folder: Path) -> str:
    """Check what Run All in notebook 09 left; return the chatbot's page address on the hub."""
    not_run = finish_run_all(page)
    copy = folder / "homes" / name / "notebooks" / "09_launch.ipynb"
    unexpected, _ = errors_shown(page, copy)
    assert unexpected == [], f"{name}: errors in notebook 09"
    assert not_run == [], f"{name}: Run All stopped before code cells {not_run}"
    frame = chat_frame(page)
    connected(frame)
    found = re.search(rf"/user/{name}/proxy/(\d+)/", frame.url)
    assert found, f"{name}'s chat page is at {frame.url}, not under /user/{name}/proxy/"
    return found.group(0)


@needs_chromium
@needs_proxy
@pytest.mark.notebooks  # heavy: on the main Python only (.ci/run)
def test_two_users_run_the_workshop_on_a_hub_and_chat_in_one_room(hub: str, tmp_path: Path) -> None:
    with chromium() as browser:
        run_on_the_hub(browser, hub, tmp_path)


def run_on_the_hub(browser: Browser, hub: str, folder: Path) -> None:
    instructor_context = browser.new_context(viewport={"width": 1280, "height": 800})
    learner_context = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        # Both log in, and both run notebook 09, side by side (as in a room, and twice as fast).
        instructor = log_in(instructor_context, hub, "instructor", INSTRUCTOR_PASSWORD)
        learner = log_in(learner_context, hub, "ada", ROOM_PASSWORD)
        users = [(instructor, "instructor"), (learner, "ada")]
        for page, name in users:
            logged_in(page, name)
            page.goto(f"{hub}user/{name}/lab/tree/notebooks/09_launch.ipynb?reset")
        for page, _name in users:
            opened(page)
            start_run_all(page)
        instructor_page, learner_page = (
            ran_notebook_09(page, name, folder) for page, name in users
        )
        assert instructor_page != learner_page  # two servers: the second moved to a free port
        chat(chat_frame(instructor), "Hello from the instructor's notebook")
        chat(chat_frame(learner), "Hello from Ada's notebook")

        # The same chatbots at the hub's address, each in its own conversation.
        instructor_tab = instructor_context.new_page()
        instructor_tab.goto(hub + instructor_page.lstrip("/"))
        chat(instructor_tab, "What is asyncio?")
        learner_tab = learner_context.new_page()
        learner_tab.goto(hub + learner_page.lstrip("/"))
        chat(learner_tab, "What is a WebSocket?")
        expect(learner_tab.locator("#log")).not_to_contain_text("What is asyncio?")
        expect(instructor_tab.locator("#log")).not_to_contain_text("What is a WebSocket?")

        # The room: everybody opens the instructor's chatbot with ?room=workshop.
        room = f"{hub}{instructor_page.lstrip('/')}?room=workshop"
        instructor_room = instructor_context.new_page()
        instructor_room.goto(room + "&name=Instructor")
        connected(instructor_room)
        learner_room = learner_context.new_page()
        learner_room.goto(room + "&name=Ada")
        # Another user's server: the hub asks the learner to authorize it, once.
        learner_room.get_by_role("button", name="Authorize").click()
        chat(learner_room, "Ada says hello to the room")
        expect(instructor_room.locator("#log")).to_contain_text("Ada says hello to the room")
        chat(instructor_room, "Welcome, Ada")
        expect(learner_room.locator("#log")).to_contain_text("Welcome, Ada")
    finally:
        learner_context.close()
        instructor_context.close()
