"""Every notebook through JupyterLab's own interface: Run All from the menu, as a learner does.

One JupyterLab (single user, no hub) serves a temporary copy of the repository whose notebooks
have no outputs; Chromium opens each notebook, clicks Run > Run All Cells, waits until every
code cell has run and the kernel is idle, then checks what the learner sees: no error except in
cells tagged ``raises-exception``, every Mermaid diagram drawn, and, in notebook 09, the chat
page in the IFrame connected (Run All leaves the server running). Then it clears the outputs and
runs all again in the same kernel, with no restart, as a learner who re-runs the notebook does,
and checks the same. nbval checks the outputs' text (one run in a fresh kernel); this checks the
interface and the second run. ``CHATBOT_SCREENSHOTS=1`` (or ``python tools/screenshots.py``) also
writes the top of each notebook and the launched page to ``docs/screenshots/``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from tests.jupyter_ui import (
    DOCS,
    NOTEBOOKS,
    SCREENSHOTS,
    chat,
    chat_frame,
    chromium,
    clear_all_outputs,
    errors_shown,
    jupyter_lab,
    mermaid_blocks,
    needs_chromium,
    new_page,
    open_notebook,
    run_all,
    save_screenshot,
    screenshot_top,
    shutdown_kernels,
    wait_for_mermaid,
    workshop_copy,
)

TOKEN = "workshop"

# Heavy (a JupyterLab, a browser, every notebook twice): on the main Python only (.ci/run runs
# `-m "not notebooks and not browser"` on the other Pythons).
pytestmark = [needs_chromium, pytest.mark.notebooks]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    folder = tmp_path_factory.mktemp("jupyterlab")
    notebooks = workshop_copy(folder / "workshop")
    with jupyter_lab(folder / "workshop", folder, TOKEN) as url:
        yield url, notebooks


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    with new_page(browser) as page:
        yield page


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_run_all_in_jupyterlab_shows_no_error(
    lab: tuple[str, Path], page: Page, notebook: Path
) -> None:
    url, notebooks = lab
    copy = notebooks / notebook.name
    open_notebook(page, f"{url}lab/tree/notebooks/{notebook.name}?reset&token={TOKEN}")
    wait_for_mermaid(page, mermaid_blocks(copy))  # Markdown renders before anything runs
    if SCREENSHOTS:
        screenshot_top(page, DOCS / "screenshots" / f"{notebook.stem}.png")
    for run in ("first", "second"):
        if run == "second":
            # Re-running in the same kernel: the servers, tasks and names of the first run are
            # still there, and every cell must cope with them.
            clear_all_outputs(page)
        not_run = run_all(page)
        unexpected, silent = errors_shown(page, copy)
        assert unexpected == [], f"{run} Run All: errors in cells not tagged raises-exception"
        assert not_run == [], f"{run} Run All stopped before code cells {not_run}"
        # Run All went on past the cells that fail on purpose, and they did fail.
        assert silent == [], f"{run} Run All: tagged raises-exception, no error: {silent}"
        if notebook.name.startswith("09_"):
            # The launched server outlives Run All: the page in the IFrame is connected.
            frame = chat_frame(page)
            chat(frame, "What is asyncio?")  # connected, and a real answer
            if SCREENSHOTS and run == "first":
                frame.locator("#status").scroll_into_view_if_needed()
                save_screenshot(page, DOCS / "screenshots" / "09_launch-page.png")
    # Stop the kernel: its servers with it, so the next notebook finds the machine as it was.
    shutdown_kernels(page, url, TOKEN)
