"""Helpers for the tests that drive JupyterLab's own interface (and JupyterHub) from Chromium.

The notebooks run on copies in a temporary workshop folder (:func:`workshop_copy`), so the
committed notebooks and their stored outputs are never touched. Servers are real processes on
127.0.0.1, started on free ports with their Jupyter folders in the temporary folder; each is
waited for by reading the line it logs when it is ready, and stopped (then killed, if it must
be) whatever the test did. Playwright's sync API drives Debian's Chromium, as
``tests/test_browser.py`` does with its async API.
"""

from __future__ import annotations

import io
import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import nbformat
import pytest
from playwright.sync_api import Browser, Frame, Page, expect, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from tests.helpers import CHROMIUM, CHROMIUM_ARGS, ROOT

NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
START_TIMEOUT = 60.0  # seconds for a server to say it is ready (a cold JupyterHub takes ~5 s)
STOP_TIMEOUT = 15.0  # seconds for a server to stop on SIGTERM before it is killed
WAIT = 30_000  # milliseconds: the longest a single wait on a page may take
RUN_ALL_TIMEOUT = 120_000  # milliseconds for Run All of one notebook (07, the longest, takes ~20 s)
SCREENSHOTS = os.environ.get("CHATBOT_SCREENSHOTS") == "1"
SCREENSHOT_HEIGHT = 640  # pixels of a notebook's top in docs/screenshots (the page is 1280 x 800)
DOCS = ROOT / "docs"

# What the temporary copy of the repository leaves out: history, build products, databases.
NOT_COPIED = shutil.ignore_patterns(
    ".git", "build", "*.egg-info", "__pycache__", "*.sqlite3*", ".ruff_cache", ".mypy_cache"
)

# JupyterLab settings for a quiet, complete page: every cell in the DOM (no windowing, so the
# test sees every output), and no "news" notification over the notebook.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}

# On a learner's machine without Chromium these tests are skipped, saying why; in CI a missing
# browser is a failure (as in tests/test_browser.py).
needs_chromium = pytest.mark.skipif(
    not os.access(CHROMIUM, os.X_OK) and not os.environ.get("CI"),
    reason=f"no Chromium at {CHROMIUM}: `apt-get install chromium`, or set CHATBOT_CHROMIUM",
)


def free_port() -> int:
    """A port free on 127.0.0.1 now (the server that takes it is started at once)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def workshop_copy(destination: Path) -> Path:
    """Copy the repository to ``destination``, the notebooks without their outputs.

    Notebook 07 runs ``tests/`` and imports ``benchmarks/`` from ``..``: the whole repository is
    copied (about 15 MB), not only the notebooks. Returns the copy's ``notebooks`` folder.
    """
    shutil.copytree(ROOT, destination, ignore=NOT_COPIED, symlinks=True)
    for path in (destination / "notebooks").glob("[0-9][0-9]_*.ipynb"):
        notebook = nbformat.read(path, as_version=4)
        for cell in notebook.cells:
            if cell.cell_type == "code":
                cell.outputs = []
                cell.execution_count = None
        nbformat.write(notebook, path)
    return destination / "notebooks"


def jupyter_env(folder: Path) -> dict[str, str]:
    """Jupyter's folders in ``folder`` (the home folder is left alone) and JupyterLab's settings."""
    env = {
        "JUPYTER_CONFIG_DIR": str(folder / "config"),
        "JUPYTER_DATA_DIR": str(folder / "data"),
        "JUPYTER_RUNTIME_DIR": str(folder / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(folder / "lab-settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(folder / "lab-workspaces"),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    for name, settings in LAB_SETTINGS.items():
        path = folder / "lab-settings" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(settings))
    return env


class ServerProcess:
    """A server started as a child process in its own process group, and its log lines."""

    def __init__(self, args: Sequence[str], *, cwd: Path, env: dict[str, str], log: Path) -> None:
        self.log_path = log
        self._log = log.open("w")
        self._lines: queue.Queue[str | None] = queue.Queue()
        self.process = subprocess.Popen(
            args,
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its children (proxy, kernels) can be stopped with it
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._log.write(line)
            self._log.flush()
            self._lines.put(line)
        self._lines.put(None)

    def wait_for_line(self, pattern: str, timeout: float = START_TIMEOUT) -> re.Match[str]:
        """Wait for a log line matching ``pattern``; fail with the log if it never comes."""
        compiled = re.compile(pattern)
        while True:
            try:
                line = self._lines.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(
                    f"no line matching {pattern!r} in {timeout:g} s; the log:\n{self.tail()}"
                ) from None
            if line is None:
                raise AssertionError(
                    f"the server exited ({self.process.wait()}) before logging {pattern!r}; the "
                    f"log:\n{self.tail()}"
                )
            if found := compiled.search(line):
                return found

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_path.read_text().splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM (the server stops what it started), then SIGKILL its whole group."""
        try:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
                try:
                    self.process.wait(timeout=STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    pass
            try:
                os.killpg(self.process.pid, signal.SIGKILL)  # whatever of its group is left
            except ProcessLookupError:
                pass
            self.process.wait(timeout=STOP_TIMEOUT)
        finally:
            self._reader.join(timeout=STOP_TIMEOUT)
            if self.process.stdout is not None:
                self.process.stdout.close()
            self._log.close()


@contextmanager
def jupyter_lab(root: Path, folder: Path, token: str) -> Iterator[str]:
    """JupyterLab serving ``root`` on a free loopback port; yields its base URL."""
    port = free_port()
    args = [
        str(Path(sys.executable).with_name("jupyter")),
        "lab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
    ]
    if os.geteuid() == 0:
        args.append("--allow-root")
    env = {**os.environ, **jupyter_env(folder)}
    server = ServerProcess(args, cwd=root, env=env, log=folder / "jupyter.log")
    try:
        server.wait_for_line(r"Jupyter Server .* is running at")
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.stop()


@contextmanager
def chromium() -> Iterator[Browser]:
    """Headless Chromium for one test module (Playwright's sync API: no event loop here)."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def new_page(browser: Browser) -> Iterator[Page]:
    """A page in a fresh context (its own cookies), sized for a readable screenshot."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(WAIT)
    try:
        yield page
    finally:
        context.close()


# JupyterLab, as a learner uses it. Selectors look only in the notebook shown (the current tab).

NOTEBOOK = ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook"

# A code cell that has run shows [N]; queued and running ones show [*], unrun ones [ ].
PROMPTS = f"""() => [...document.querySelectorAll('{NOTEBOOK} .jp-CodeCell .jp-InputPrompt')]
    .map(prompt => prompt.textContent.trim())"""


def open_notebook(page: Page, url: str) -> None:
    """Open a notebook in JupyterLab and wait until its kernel is idle."""
    page.goto(url)
    opened(page)


def opened(page: Page) -> None:
    """Wait until the notebook a page is loading shows its cells and its kernel is idle.

    (Several pages can load at once: ``page.goto`` each, then ``opened`` each.)
    """
    page.locator(f"{NOTEBOOK} .jp-Cell").first.wait_for()
    idle(page)
    # Fold the file browser away: the notebook gets the whole width, as in the screenshots.
    folded = page.locator(".jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current")
    if folded.count():
        folded.click()


def idle(page: Page) -> None:
    """Wait until the notebook has a kernel and the kernel is idle.

    The toolbar's execution indicator says "idle" before the notebook has any kernel (its kernel
    name reads "No Kernel" then: for seconds on a busy hub, while JupyterLab starts the session).
    Run All in that window asks which kernel to start and runs nothing: wait for the kernel.
    """
    panel = ".jp-NotebookPanel:not(.lm-mod-hidden)"
    expect(page.locator(f"{panel} .jp-Toolbar-kernelName")).not_to_have_text(
        "No Kernel", timeout=WAIT
    )
    indicator = page.locator(f"{panel} .jp-Notebook-ExecutionIndicator")
    expect(indicator).to_have_attribute("data-status", "idle", timeout=WAIT)


def run_all(page: Page) -> list[int]:
    """Run > Run All Cells from JupyterLab's menu; wait until the run ends and the kernel is idle.

    Returns the numbers of the code cells that did not run (Run All stops at an error).
    """
    start_run_all(page)
    return finish_run_all(page)


def start_run_all(page: Page) -> None:
    """Click Run > Run All Cells and wait until the first cell has begun (several pages can
    run at once: start each, then finish each)."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile("^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile("^Run All Cells$")).click()
    # The run has begun when the first cell has a number. A dialog instead (say "Select
    # Kernel") means the notebook had no kernel: the run never began.
    begun = f"() => /\\d/.test(({PROMPTS})()[0]) || !!document.querySelector('.jp-Dialog')"
    page.wait_for_function(begun, timeout=RUN_ALL_TIMEOUT, polling=100)
    dialog = page.locator(".jp-Dialog")
    assert not dialog.count(), f"Run All opened a dialog instead: {dialog.first.inner_text()}"


def clear_all_outputs(page: Page) -> None:
    """Edit > Clear Outputs of All Cells, and wait until no code cell shows a number: the kernel
    keeps everything the cells defined, and a Run All after this begins as the first one did."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile("^Edit$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile("^Clear Outputs of All Cells$")).click()
    cleared = f"() => ({PROMPTS})().every(prompt => !/\\d/.test(prompt))"
    page.wait_for_function(cleared, timeout=WAIT, polling=100)


def finish_run_all(page: Page) -> list[int]:
    """Wait until no cell shows [*] and the kernel is idle; return the code cells not run."""
    try:
        page.wait_for_function(
            f"() => !({PROMPTS})().includes('[*]:')", timeout=RUN_ALL_TIMEOUT, polling=100
        )
    except PlaywrightTimeoutError:
        prompts = page.evaluate(PROMPTS)
        running = prompts.index("[*]:") + 1
        shown = page.locator(f"{NOTEBOOK} .jp-CodeCell").nth(running - 1).inner_text()
        raise AssertionError(
            f"Run All did not end in {RUN_ALL_TIMEOUT / 1000:g} s: code cell {running} still "
            f"runs; it shows:\n{shown[:3000]}"
        ) from None
    idle(page)
    prompts: list[str] = page.evaluate(PROMPTS)
    return [n for n, prompt in enumerate(prompts, start=1) if not re.search(r"\d", prompt)]


def errors_shown(page: Page, notebook: Path) -> tuple[list[str], list[int]]:
    """The errors on the page: those of cells not tagged ``raises-exception`` (each with its
    code cell's number and text), and the numbers of tagged cells that show none."""
    code = [c for c in nbformat.read(notebook, as_version=4).cells if c.cell_type == "code"]
    tagged = [("raises-exception" in c.metadata.get("tags", [])) for c in code]
    # JupyterLab shows a traceback as an output of type stderr that names the exception.
    shown = page.eval_on_selector_all(
        f"{NOTEBOOK} .jp-CodeCell",
        """cells => cells.map(cell => [...cell.querySelectorAll(
            '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')]
            .map(o => o.textContent).filter(t => /Traceback|Error/.test(t)).join('\\n'))""",
    )
    assert len(shown) == len(code), f"{len(shown)} code cells on the page, {len(code)} in the file"
    cells = list(enumerate(zip(shown, tagged, strict=True), start=1))
    unexpected = [f"code cell {n}: {text[:2000]}" for n, (text, ok) in cells if text and not ok]
    silent = [n for n, (text, ok) in cells if ok and not text]
    return unexpected, silent


def mermaid_blocks(notebook: Path) -> int:
    cells = nbformat.read(notebook, as_version=4).cells
    return sum(c.source.count("```mermaid") for c in cells if c.cell_type == "markdown")


def wait_for_mermaid(page: Page, count: int) -> None:
    """Wait until ``count`` Mermaid diagrams are drawn (an SVG image each, not the code)."""
    drawn = page.locator(f'{NOTEBOOK} .jp-RenderedMermaid img[src^="data:image/svg+xml"]')
    expect(drawn).to_have_count(count, timeout=WAIT)


def shutdown_kernels(page: Page, url: str, token: str) -> None:
    """Shut down every kernel of the Jupyter server at ``url`` (its REST API, as the UI does)."""
    headers = {"Authorization": f"token {token}"}
    kernels = page.request.get(f"{url}api/kernels", headers=headers)
    assert kernels.ok, kernels.status
    for kernel in kernels.json():
        page.request.delete(f"{url}api/kernels/{kernel['id']}", headers=headers)


def chat_frame(page: Page) -> Frame:
    """The chat page in notebook 09's IFrame."""
    handle = page.locator(f"{NOTEBOOK} iframe").first.element_handle()
    assert handle is not None
    frame = handle.content_frame()
    assert frame is not None, "the IFrame has no page"
    return frame


def say(frame: Frame | Page, text: str) -> None:
    box = frame.get_by_label("Message", exact=True)
    box.fill(text)
    box.press("Enter")


def connected(frame: Frame | Page) -> None:
    expect(frame.locator("#status")).to_have_attribute("data-state", "connected", timeout=WAIT)


def chat(frame: Frame | Page, text: str) -> None:
    """Say ``text`` and wait for the bot's reply to it (not just "connected": a real answer)."""
    connected(frame)
    say(frame, text)
    # The reply is the bot's message right after ours: counting the bot's messages would race
    # with a history that is still being drawn (a resumed session), or a message sent again
    # after a reconnect (the page prefers "at least once").
    mine = frame.locator("#log .msg.me", has_text=text).last
    expect(mine).to_be_visible(timeout=WAIT)
    reply = mine.locator("xpath=following-sibling::li[contains(@class, 'bot')][1]")
    expect(reply).to_be_visible(timeout=WAIT)
    expect(reply).not_to_have_attribute("data-state", "streaming", timeout=WAIT)


def screenshot_top(page: Page, path: Path) -> None:
    """The notebook's first screen, the file browser folded away, as a small PNG."""
    page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-WindowedPanel-outer").evaluate(
        "element => element.scrollTo(0, 0)"
    )
    save_screenshot(page, path, height=SCREENSHOT_HEIGHT)


def save_screenshot(page: Page, path: Path, *, height: int | None = None) -> None:
    """The page (its top ``height`` pixels) as a 32-colour PNG: about 40 KB, not 160.

    JupyterLab is flat colours and text, so 32 colours lose nothing a reader would notice.
    """
    from PIL import Image  # Pillow comes with matplotlib; only screenshots need it

    viewport = page.viewport_size
    assert viewport is not None
    clip = {"x": 0, "y": 0, "width": viewport["width"], "height": height or viewport["height"]}
    shot = Image.open(io.BytesIO(page.screenshot(clip=clip))).convert("RGB")
    small = shot.quantize(colors=32, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    path.parent.mkdir(parents=True, exist_ok=True)
    small.save(path, optimize=True)
