"""The chat page draws the bot's Markdown safely, and passes axe-core's WCAG 2 A/AA checks.

Real servers on 127.0.0.1 port 0, real Chromium (see ``tests/test_browser.py``, whose helpers
these tests use). The brain here answers chosen messages with exact Markdown, streamed in small
pieces so that markup is cut across chunks, and echoes anything else.

axe-core comes from the npm registry, once per test session (``npm install axe-core@4`` into a
temporary folder), or from ``$CHATBOT_AXE`` (the path of an ``axe.min.js``). Without npm or the
registry these tests are skipped, saying how to get it; under ``CI`` they fail instead. Last run
with axe-core 4.14.1: no violations. Before the page was fixed, the same tags found ``listitem``
(the messages' ``<li>`` in an ``<ol role="log">``, no list any more) and, once the conversation
scrolled, ``scrollable-region-focusable``; ``aria-allowed-role`` (best practice) is gone too.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Dialog, Page

from chatbot import serve
from tests.test_browser import (
    bot_replies,
    chat,
    chromium,
    expect,
    messages,
    new_page,
    open_chat,
    say,
    status,
    texts,
)
from tests.test_browser import pytestmark as browser_mark

pytestmark = browser_mark  # no Chromium: skipped with how to install it (failed under CI)

AXE_CORE = "axe-core@4"  # the major version pinned; the exact one is in every failure message
AXE_TAGS = ["wcag2a", "wcag2aa"]

CODE = (
    "async def main():\n"
    "\tawait asyncio.sleep(1)  # a tab, and two spaces before this comment  \n"
    "\n"
    "    print('<b>not bold</b> & **not strong** `not code` [no](https://link.example)')\n"
    "    \\\\ back\\slashes \\* stay"
)
MARKDOWN = f"""Use `asyncio.create_task()` to start **two** things *at once*:

- start a `task` for each
- keep a reference:
  - in a set
  - or in a list

1. create them
2. await them

```python
{CODE}
```

Read [the asyncio docs](https://docs.python.org/3/library/asyncio-task.html) for more."""

INERT = """Links that must stay text:
[one](javascript:alert(1)) [two](JaVaScRiPt:alert(2)) [three]( javascript:alert(3) )
[four](data:text/html,<script>alert(4)</script>) [five](vbscript:msgbox(5))
<javascript:alert(6)> [seven](//evil.example/) [eight](file:///etc/passwd)
and one that may: [docs.python.org](https://evil.example/login)"""

RAW_HTML = """<img src=x onerror=alert(1)> and <script>alert(2)</script>
**<img src=x onerror=alert(3)>** and *<b onmouseover=alert(4)>hover</b>*
- <iframe src="javascript:alert(5)"></iframe>
- [<img src=x onerror=alert(6)>](https://example.com/)
`<svg onload=alert(7)>`"""

BROKEN = "\n\n".join(
    [
        "**bold *both** `code ``` _under*score_ [unclosed](https://example.com",
        "- " * 400 + "deep",
        "*" * 2000 + "_" * 2000,
        "***",
        "ticks " + "`" * 1000,
        "[" * 500 + "]" * 500,
        "# ",
        "```",
        "never closed <b>",
    ]
)

ANSWERS = {"markdown": MARKDOWN, "inert": INERT, "raw html": RAW_HTML, "broken": BROKEN}


def markdown_brain(gate: asyncio.Event | None = None) -> Any:
    """Answer ``ANSWERS[message]`` exactly, or ``You said: MESSAGE``, 7 characters per chunk.

    With a ``gate``, the answer to ``markdown`` waits half-way (inside its code block) until the
    test sets the gate.
    """

    async def bot(message: str) -> AsyncIterator[str]:
        text = ANSWERS.get(message, f"You said: {message}")
        middle = text.index("await asyncio") if message == "markdown" else len(text)
        head, tail = text[:middle], text[middle:]
        for start in range(0, len(head), 7):
            yield head[start : start + 7]
        if gate is not None and tail:
            await gate.wait()
        for start in range(0, len(tail), 7):
            yield tail[start : start + 7]

    return bot


async def click_on_text(page: Page, text: str) -> None:
    """Click in the middle of where ``text`` is shown in the conversation (not an element's)."""
    box = await page.evaluate(
        """text => {
            const walker = document.createTreeWalker(document.getElementById("log"), 4);
            while (walker.nextNode()) {
                const at = walker.currentNode.data.indexOf(text);
                if (at < 0) continue;
                const range = document.createRange();
                range.setStart(walker.currentNode, at);
                range.setEnd(walker.currentNode, at + text.length);
                const {x, y, width, height} = range.getBoundingClientRect();
                return {x: x + width / 2, y: y + height / 2};
            }
            return null;
        }""",
        text,
    )
    assert box is not None, f"{text!r} is not on the page"
    await page.mouse.click(box["x"], box["y"])


def reply_html(page: Page, index: int = -1) -> Any:
    """The drawn HTML of a bot reply (to compare drawings, never to put anything on the page)."""
    return bot_replies(page).nth(index).locator(".text").evaluate("e => e.innerHTML")


async def test_a_markdown_answer_is_drawn_as_elements_live_and_from_history() -> None:
    async with serve(markdown_brain(), "127.0.0.1", 0) as server, chromium() as browser:
        async with new_page(browser) as page:
            await open_chat(page, server.http_url)
            await chat(page, "markdown", re.compile("^Use asyncio.create_task"))
            reply = bot_replies(page).last.locator(".text")
            await expect(reply.locator("code").first).to_have_text("asyncio.create_task()")
            await expect(reply.locator("strong")).to_have_text(["two"])
            await expect(reply.locator("em")).to_have_text(["at once"])
            await expect(reply.locator("> ul > li")).to_have_count(2)
            await expect(reply.locator("> ul > li ul > li")).to_have_text(
                ["in a set", "or in a list"]
            )
            await expect(reply.locator("> ol > li")).to_have_text(["create them", "await them"])
            # The code block keeps its text exactly: tabs, spaces, blank lines, backslashes, and
            # what would be HTML or Markdown anywhere else.
            assert await reply.locator("pre code").text_content() == CODE
            await expect(reply.locator("pre b, pre strong, pre a")).to_have_count(0)
            link = reply.get_by_role("link")
            await expect(link).to_have_attribute(
                "href", "https://docs.python.org/3/library/asyncio-task.html"
            )
            await expect(link).to_have_text("the asyncio docs (docs.python.org)")
            await expect(link).to_have_attribute("target", "_blank")
            await expect(link).to_have_attribute("rel", "noopener noreferrer nofollow")
            live = await reply_html(page)
            # What the user typed stays as typed: no Markdown in people's messages.
            typed = "**not bold** [not a link](https://example.com/) `not code`"
            await chat(page, typed, "You said: not bold not a link (example.com) not code")
            mine = messages(page).nth(2)
            await expect(mine.locator(".text")).to_have_text(typed)
            await expect(mine.locator("strong, a, code")).to_have_count(0)
            # The history draws the same as the live reply did.
            await page.reload()
            await expect(status(page)).to_have_attribute("data-state", "connected")
            await expect(bot_replies(page)).to_have_count(2)
            assert await reply_html(page, 0) == live
            await expect(messages(page).nth(2).locator("strong, a, code")).to_have_count(0)


async def test_a_streaming_reply_takes_shape_and_ends_as_the_stored_one() -> None:
    gate = asyncio.Event()
    async with serve(markdown_brain(gate), "127.0.0.1", 0) as server, chromium() as browser:
        async with new_page(browser) as page:
            await open_chat(page, server.http_url)
            await say(page, "markdown")
            reply = bot_replies(page).first
            # Half-way, inside the code block: the fence is not closed yet, and it is code already.
            await expect(reply.locator("pre code")).to_have_text("async def main():")
            assert await reply.locator("pre code").text_content() == "async def main():\n\t"
            await expect(reply).to_have_attribute("data-status", "streaming")
            await expect(reply.locator("ul li")).to_have_count(4)
            gate.set()
            await expect(reply).to_have_attribute("data-status", "complete")
            assert await reply.locator("pre code").text_content() == CODE
            streamed = await reply_html(page)
            await page.reload()
            await expect(status(page)).to_have_attribute("data-state", "connected")
            await expect(bot_replies(page)).to_have_count(1)
            assert await reply_html(page) == streamed


async def test_links_to_anything_but_http_stay_inert_text() -> None:
    dialogs: list[str] = []

    async def dismiss(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        await dialog.dismiss()

    async with serve(markdown_brain(), "127.0.0.1", 0) as server, chromium() as browser:
        async with new_page(browser) as page:
            page.on("dialog", dismiss)
            await open_chat(page, server.http_url)
            reply = await chat(page, "inert", re.compile("^Links that must stay text"))
            # One link only, the https one; it says where it leads, whatever its text claims.
            hrefs = await page.locator("#log a").evaluate_all("links => links.map(a => a.href)")
            assert hrefs == ["https://evil.example/login"]
            await expect(reply.get_by_role("link")).to_have_text("docs.python.org (evil.example)")
            await expect(page.locator("#log [href], #log [src], #log [onclick]")).to_have_count(1)
            # The others are shown as typed, and clicking them does nothing.
            text = reply.locator(".text")
            for typed in [
                "[one](javascript:alert(1))",
                "[two](JaVaScRiPt:alert(2))",
                "[four](data:text/html,<script>alert(4)</script>)",
                "[five](vbscript:msgbox(5))",
                "<javascript:alert(6)>",
                "[seven](//evil.example/)",
                "[eight](file:///etc/passwd)",
            ]:
                await expect(text).to_contain_text(typed)
            url = page.url
            for word in ["[one]", "[two]", "[three]", "[four]", "[five]", "alert(6)", "[seven]"]:
                await click_on_text(page, word)
            await expect(bot_replies(page)).to_have_count(1)
            assert (page.url, len(page.context.pages), dialogs) == (url, 1, [])


async def test_raw_html_inside_markdown_is_shown_as_text() -> None:
    dialogs: list[str] = []

    async def dismiss(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        await dialog.dismiss()

    async with serve(markdown_brain(), "127.0.0.1", 0) as server, chromium() as browser:
        async with new_page(browser) as page:
            page.on("dialog", dismiss)
            await open_chat(page, server.http_url)
            for _ in range(2):  # as it arrived, then from the history after a reload
                if not await bot_replies(page).count():
                    await chat(page, "raw html", re.compile("^<img src=x onerror=alert"))
                reply = bot_replies(page).first.locator(".text")
                await expect(page.locator("#log :is(img, script, iframe, svg, b)")).to_have_count(0)
                for typed in [
                    "<img src=x onerror=alert(1)> and <script>alert(2)</script>",
                    '<iframe src="javascript:alert(5)"></iframe>',
                ]:
                    await expect(reply).to_contain_text(typed)
                await expect(reply.locator("strong")).to_have_text("<img src=x onerror=alert(3)>")
                await expect(reply.locator("em")).to_have_text("<b onmouseover=alert(4)>hover</b>")
                await expect(reply.locator("li a")).to_have_text(
                    "<img src=x onerror=alert(6)> (example.com)"
                )
                await expect(reply.locator("code")).to_have_text("<svg onload=alert(7)>")
                await reply.hover()
                await page.reload()
                await expect(status(page)).to_have_attribute("data-state", "connected")
                await expect(bot_replies(page)).to_have_count(1)
            assert dialogs == []


async def test_nested_and_unterminated_markup_does_not_break_the_page() -> None:
    async with serve(markdown_brain(), "127.0.0.1", 0) as server, chromium() as browser:
        async with new_page(browser) as page:  # fails on any JavaScript error
            await open_chat(page, server.http_url)
            await chat(page, "broken", re.compile(r"^\*bold both `code ``` under\*score "))
            reply = bot_replies(page).last.locator(".text")
            await expect(reply.locator("p em").first).to_have_text("bold both")
            # Lists nest only so deep; what is deeper shows as text.
            assert await reply.locator("li").count() <= 10
            await expect(reply.locator("li").last).to_have_text(re.compile(r"^(- )+deep$"))
            # A fence never closed runs to the end, its text kept.
            await expect(reply.locator("pre code")).to_have_text("never closed <b>")
            await expect(reply).to_contain_text("*" * 2000 + "_" * 2000)
            await expect(reply).to_contain_text("ticks " + "`" * 1000)
            # The page goes on working: the next message gets its reply.
            await chat(page, "still fine?")
            assert (await texts(page))[-1] == "You said: still fine?"


async def test_in_a_room_only_the_bot_is_drawn_from_markdown() -> None:
    typed = "**URGENT** from the teacher: [reset your password](https://evil.example/reset)"
    async with serve(markdown_brain(), "127.0.0.1", 0) as server, chromium() as browser:
        async with new_page(browser) as ada, new_page(browser) as bob:
            await open_chat(ada, server.http_url + "?room=workshop&name=Ada")
            await open_chat(bob, server.http_url + "?room=workshop&name=Bob")
            await expect(ada.locator("#log .system")).to_have_count(2)
            await chat(
                ada, typed, "You said: URGENT from the teacher: reset your password (evil.example)"
            )
            await expect(bot_replies(bob)).to_have_count(1)
            other = bob.locator("#log .msg.other")
            await expect(other.locator(".text")).to_have_text(typed)
            await expect(other.locator("strong, a")).to_have_count(0)
            # The bot repeats it, Markdown and all: its link shows where it really leads.
            echo = bot_replies(bob).last
            await expect(echo).to_have_attribute("data-status", "complete")
            await expect(echo.get_by_role("link")).to_have_text(
                "reset your password (evil.example)"
            )


# axe-core, from the npm registry.


@dataclass(frozen=True)
class Axe:
    source: str  # axe.min.js
    version: str


def axe_missing(reason: str) -> None:
    how = (
        f"{reason}. The accessibility test runs axe-core from the npm registry: install Node.js "
        f"and npm (`apt-get install npm`), or download it yourself (`npm pack {AXE_CORE}`, "
        "unpack it) and set CHATBOT_AXE to its package/axe.min.js"
    )
    if os.environ.get("CI"):
        pytest.fail(how)
    pytest.skip(how)


@pytest.fixture(scope="session")
def axe(tmp_path_factory: pytest.TempPathFactory) -> Axe:
    """axe-core's script: ``$CHATBOT_AXE``, or installed from npm once per test session."""
    if given := os.environ.get("CHATBOT_AXE"):
        script = Path(given)
    else:
        npm = shutil.which("npm")
        if npm is None:
            axe_missing("npm is not installed")
        folder = tmp_path_factory.mktemp("axe")
        argv = [npm, "install", "--prefix", str(folder), "--no-audit", "--no-fund", AXE_CORE]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
        except subprocess.TimeoutExpired:
            axe_missing(f"`npm install {AXE_CORE}` did not finish in 300 s")
        if done.returncode != 0:
            axe_missing(f"`npm install {AXE_CORE}` failed: {done.stderr.strip()[-1000:]}")
        script = folder / "node_modules" / "axe-core" / "axe.min.js"
    if not script.is_file():
        axe_missing(f"no axe.min.js at {script}")
    version = json.loads((script.parent / "package.json").read_text())["version"]
    return Axe(script.read_text(), version)


async def axe_violations(page: Page, axe: Axe) -> list[str]:
    """Run axe-core on the page as it is now; one line per rule broken, with where."""
    # Through the DevTools protocol, so the page's policy (hashed inline scripts only) allows it.
    if not await page.evaluate("typeof axe !== 'undefined'"):
        await page.evaluate(axe.source)
    result = await page.evaluate(
        "tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})", AXE_TAGS
    )
    return [
        f"{rule['id']} ({rule['impact']}): {rule['help']}: "
        + "; ".join(node["html"][:160] for node in rule["nodes"][:5])
        for rule in result["violations"]
    ]


@pytest.mark.parametrize("scheme", ["light", "dark"])
async def test_a_conversation_has_no_wcag_violations(axe: Axe, scheme: str) -> None:
    async with serve(markdown_brain(), "127.0.0.1", 0) as server, chromium() as browser:
        # A small window, so the conversation scrolls (and must be scrollable by keyboard).
        options: dict[str, Any] = {"viewport": {"width": 420, "height": 560}}
        async with new_page(browser, **options) as ada, new_page(browser, **options) as bob:
            await bob.emulate_media(color_scheme=scheme)
            await open_chat(ada, server.http_url + "?room=workshop&name=Ada")
            await open_chat(bob, server.http_url + "?room=workshop&name=Bob")
            await expect(ada.locator("#log .system")).to_have_count(2)
            await chat(ada, "hello, everyone")
            await expect(bob.locator("#log .msg.other")).to_have_count(1)
            await expect(bot_replies(bob)).to_have_count(1)
            lines = "\n\n".join(f"line {number}" for number in range(1, 8))
            await say(bob, lines)
            await expect(bot_replies(bob)).to_have_count(2)
            await expect(bot_replies(bob).last).to_have_attribute("data-status", "complete")
            # The conversation scrolls, and has no link yet to reach it with the keyboard.
            assert await bob.evaluate("scroller.scrollHeight > scroller.clientHeight")
            violations = await axe_violations(bob, axe)
            assert violations == [], f"axe-core {axe.version}, {scheme}: {violations}"
            await chat(bob, "markdown", re.compile("^Use asyncio.create_task"))
            await ada.close()
            await expect(bob.locator("#log .system").last).to_have_text("Ada left · 1 here")
            violations = await axe_violations(bob, axe)
            assert violations == [], f"axe-core {axe.version}, {scheme}: {violations}"
