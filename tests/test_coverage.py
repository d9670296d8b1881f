"""The knowledge base covers the course: each notebook's ``## N.`` sections map to FAQ entries.

For every numbered section of every notebook (exercises aside: they practise what the sections
before them teach), :data:`COVERAGE` names the entry that answers questions about it and a
question a learner might type about it. The test reads the headings from the notebooks, so a
new section fails until it has its line here (and, if need be, its entry in
``chatbot/data/faq.md``), and asks the default brain each question: it must answer from the
mapped entry, not say it is not sure.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from chatbot.brains.assistant import AssistantBrain
from chatbot.brains.base import Conversation
from chatbot.brains.faq import KnowledgeBase

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
SECTION = re.compile(r"^## (\d+)\. (.+)$", re.M)

# (notebook number, section number): (the FAQ entry's heading, a question about the section).
COVERAGE: dict[tuple[str, int], tuple[str, str]] = {
    ("01", 1): ("What does await do?", "what happens when my coroutine reaches an await"),
    ("01", 2): ('What does "coroutine was never awaited" mean?', "i forgot an await, what now"),
    ("01", 3): ("What is a task?", "do background tasks keep running when the cell finishes"),
    ("01", 4): (
        'What does "Task exception was never retrieved" mean?',
        "my background task raised and nobody saw the exception",
    ),
    ("01", 5): (
        "How do I run several coroutines at the same time?",
        "how does asyncio.gather work",
    ),
    ("01", 6): ("How do I add a timeout?", "how do timeouts work in asyncio"),
    ("01", 7): ("How does cancellation work?", "what happens when a task gets cancelled"),
    ("01", 8): (
        "Why does asyncio.run() fail in Jupyter?",
        "why can't i use asyncio.run in jupyter",
    ),
    ("01", 9): ("Should I use nest_asyncio?", "what does nest_asyncio do"),
    ("01", 10): ("How can I see that the event loop is blocked?", "what is the LagMonitor for"),
    ("01", 11): (
        "How do the exercise checkers work?",
        "how does run_bounded stop a blocking answer",
    ),
    ("02", 1): (
        "Why does my handler fail with \"missing 1 required positional argument: 'path'\"?",
        "why does the old blog code with handler(websocket, path) fail",
    ),
    ("02", 2): ("How do I write a WebSocket server in Python?", "an echo server with websockets"),
    ("02", 3): (
        "How does one server handle many clients at once?",
        "how do several clients connect at once",
    ),
    ("02", 4): ("What do WebSocket close codes mean?", "how does a websocket connection end"),
    ("02", 5): (
        'What does "address already in use" mean?',
        "port already in use when i rerun the cell",
    ),
    ("02", 6): (
        "How is the chatbot package made from the notebooks?",
        "where does the chatbot package come from",
    ),
    ("03", 1): ("What is a brain?", "what is the reply function of the chatbot"),
    ("03", 2): ("How does a reply stream?", "how do async generators stream a reply"),
    ("03", 3): ("What is a brain?", "what interface does every brain have"),
    ("03", 4): (
        "How do I run blocking code without freezing the server?",
        "a slow brain freezes every client, what is the fix",
    ),
    ("03", 5): ("What is a chain of brains?", "what is a chain of brains"),
    ("03", 6): ("What is a brain?", "which brains ship with the chatbot"),
    ("03", 8): (
        "How does the default brain choose an answer?",
        "how does the rules brain match a message",
    ),
    ("03", 9): ("What is ELIZA?", "how does eliza's script work"),
    ("03", 10): ("How does the FAQ brain find an answer?", "how does bm25 rank the faq"),
    ("03", 11): (
        "How do I use a language model as the brain?",
        "how does the llm client stream from a model server",
    ),
    ("03", 12): ("How is a chatbot evaluated?", "how do you measure how well the bot answers"),
    ("04", 1): (
        "How does one server handle many clients at once?",
        "does every connection get a task of its own",
    ),
    ("04", 2): ("Why do I need a lock in asyncio code?", "shared state changes during an await"),
    ("04", 3): (
        'What does "write before you acknowledge" mean?',
        "why write before you acknowledge",
    ),
    ("04", 4): ("Is anything lost when the server is killed?", "what is lost after kill -9"),
    ("04", 6): ("Why does SQLite run in its own thread?", "why does the store have its own thread"),
    ("04", 7): ("When do sessions expire?", "when are idle sessions deleted"),
    ("05", 1): ("What is the chatbot.v1 protocol?", "what is the json protocol of the server"),
    ("05", 2): ("What limits does the server enforce?", "what limits does the chat server have"),
    ("05", 3): ("What is the hub?", "what are clients, outboxes and channels in the hub"),
    ("05", 4): ("What is the chatbot.v1 protocol?", "how do i talk json to the server"),
    ("05", 5): ("How do rooms work?", "how do rooms work in the chatbot"),
    ("05", 6): ("What is backpressure?", "what happens when one client stops reading"),
    ("05", 7): (
        "What does the server do with bad input?",
        "what does the server do with bad input",
    ),
    ("05", 8): ('What does the error "store_failed" mean?', "what happens when the store fails"),
    ("05", 10): ("What is the hub?", "what is an outbox"),
    ("05", 11): (
        "What does Redis pub/sub do in the chatbot?",
        "how does a message reach another process",
    ),
    ("06", 1): (
        "How does the server serve a web page on the WebSocket port?",
        "how does the server answer plain http on the websocket port",
    ),
    ("06", 2): (
        "How do I launch the chatbot from the notebook?",
        "how do i start the finished server",
    ),
    ("06", 3): ("How do I open the chat page?", "how do i open the chat page"),
    ("06", 4): (
        "How does the page find its WebSocket behind a proxy?",
        "how does the page find its socket url",
    ),
    ("06", 5): (
        "How do I stop other websites from connecting to my server?",
        "why does the origin check matter",
    ),
    ("07", 1): ("How do I test async code?", "how do i write a test for the server"),
    ("07", 2): ("How do I run the project's tests?", "how do i run the project's tests"),
    ("07", 3): ("How do I load test the server?", "how does the server do under load"),
    ("07", 4): (
        "What does blocking the event loop mean?",
        "what does a blocking brain do to the latency of everyone",
    ),
    ("07", 5): (
        "Why does SQLite run in its own thread?",
        "what does group commit save on each fsync",
    ),
    ("08", 1): ("How do I run several server processes?", "what does one process keep to itself"),
    ("08", 2): ("What does Redis pub/sub do in the chatbot?", "what is redis for in this notebook"),
    ("08", 3): (
        "Can the store use Redis instead of SQLite?",
        "can the store use redis instead of sqlite",
    ),
    ("08", 4): (
        "What does Redis pub/sub do in the chatbot?",
        "how does a broadcast cross processes",
    ),
    ("08", 5): ("How do rooms work?", "a room whose members are on two different servers"),
    ("08", 6): ("What happens during a rolling restart?", "what is a rolling restart"),
    ("08", 7): (
        "How do I run several server processes?",
        "what changes when the chatbot runs on several processes",
    ),
    ("08", 9): ("Can the store use Redis instead of SQLite?", "how is the redis store built"),
    ("08", 10): ("What does Redis pub/sub do in the chatbot?", "how does the fan-out work inside"),
    ("08", 11): ("How do I shut the server down cleanly?", "how do i stop the servers at the end"),
    ("09", 1): ("How do I launch the chatbot from the notebook?", "how do i launch the chatbot"),
    ("09", 2): (
        "How do I launch the chatbot from the notebook?",
        "how do i open the chat page from the notebook",
    ),
    ("09", 3): (
        "How do I connect to a WebSocket server?",
        "how do i talk to the chatbot from python",
    ),
    ("09", 4): ("What is the event log?", "where is the live event log"),
    ("09", 5): ("How do I launch the chatbot from the notebook?", "what does launch() do inside"),
    ("09", 6): (
        "How do I start the chatbot server from a terminal?",
        "python -m chatbot in a terminal",
    ),
    ("09", 8): (
        "How do I start the chatbot server from a terminal?",
        "what options does the command line take",
    ),
    ("09", 9): (
        'What does "python -m chatbot doctor" check?',
        "how do i check my machine before the workshop",
    ),
    ("09", 10): (
        "How do I shut the server down cleanly?",
        "how do i stop the server when the workshop is over",
    ),
}


def sections() -> list[tuple[str, int, str]]:
    """Every numbered ``## N.`` section of every notebook, exercises aside: (notebook, N, title)."""
    found = []
    for path in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type != "markdown":
                continue
            for number, title in SECTION.findall(cell.source):
                if "Exercise" not in title:
                    found.append((path.name[:2], int(number), title.strip()))
    return found


@pytest.fixture(scope="module")
def brain() -> AssistantBrain:
    return AssistantBrain()


def test_every_section_of_every_notebook_is_mapped_to_an_entry() -> None:
    missing = [
        f"notebook {notebook}, section {number}. {title}"
        for notebook, number, title in sections()
        if (notebook, number) not in COVERAGE
    ]
    assert not missing, (
        "sections with no FAQ entry in tests/test_coverage.py COVERAGE (add the entry that "
        f"answers questions about each, and a question): {missing}"
    )


def test_the_mapping_names_only_sections_and_entries_that_exist() -> None:
    existing = {(notebook, number) for notebook, number, _ in sections()}
    assert not set(COVERAGE) - existing, "mapped sections that no notebook has any more"
    headings = {entry.question for entry in KnowledgeBase.load().entries}
    unknown = sorted({entry for entry, _ in COVERAGE.values()} - headings)
    assert not unknown, f"mapped entries that chatbot/data/faq.md does not have: {unknown}"


@pytest.mark.parametrize(("where", "mapped"), sorted(COVERAGE.items()), ids=str)
def test_a_question_about_each_section_reaches_its_entry(
    brain: AssistantBrain, where: tuple[str, int], mapped: tuple[str, str]
) -> None:
    entry, question = mapped
    answer = brain.answer(question, Conversation())
    assert (answer.by, answer.topic) == ("faq", entry), (
        f"notebook {where[0]}, section {where[1]}: {question!r} got {answer.by} {answer.topic!r}"
    )
