"""What each shipped brain costs per reply, in-process: ``python benchmarks/brains.py``.

No server, no network: each brain answers a corpus of messages in a running asyncio loop, the
way the server's channel worker drives it (the whole stream, chunk by chunk), and
every reply is timed with ``time.perf_counter_ns``. The figure is the brain's own cost, what a
message costs the event loop on top of the transport and the store (``benchmarks/run.py``).

The corpus is built from what ships in ``chatbot/data`` and what people type at a workshop:

- ``faq``: every question and every ``Also:`` phrasing of ``chatbot/data/faq.md``;
- ``cacm``: the young lady's lines of the conversation printed in the 1966 CACM paper, which
  ``chatbot/data/eliza-doctor-1966.txt`` answers (tests/test_eliza.py checks the replies);
- ``rules``: messages that trigger each default rule (greeting, name, help, time, thanks...);
- ``chat``: a mixed workshop chat, short and long lines, questions, small talk, venting.

Each corpus is replayed as one conversation (a fresh :class:`~chatbot.brains.base.Conversation` per
pass, so the brains' memory stays bounded), again and again until ``--replies`` replies or
``--seconds`` seconds per brain, after one unmeasured pass. ``llm`` is left out: it needs an HTTP
endpoint, and its cost is the model's, not the loop's.

It prints first how fast the machine is: the time of ``sum(range(1000))``, as ``python -m
timeit`` takes it (also in the JSON report). One machine here has been three times slower than
another, so a figure means little without it.

Writes ``benchmarks/results/brains.json`` (``brains-smoke.json`` with ``--smoke``).

Examples::

    python benchmarks/brains.py                      # every brain, up to 20,000 replies or 5 s each
    python benchmarks/brains.py --brains assistant,eliza --seconds 10
    python benchmarks/brains.py --smoke              # a second or two: what CI runs
    python benchmarks/brains.py --long               # the longest messages, costliest shapes
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import platform
import random
import statistics
import string
import sys
import time
import timeit
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from chatbot import cli
from chatbot.brains.base import Brain, Conversation, NoAnswer, load_brain
from chatbot.brains.faq import KnowledgeBase
from chatbot.server.limits import Limits

__all__ = ["BRAINS", "corpus", "main", "measure"]

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
SCHEMA = 1
BRAINS = ("echo", "rules", "eliza", "faq", "assistant")
"""The brains measured by default: every shipped brain but ``llm`` (it needs an HTTP endpoint)."""

SMOKE = {"replies": 300, "seconds": 0.5}

# The young lady's lines, as printed in Weizenbaum, CACM 9(1), January 1966, pages 36-37.
CACM_1966 = [
    "Men are all alike.",
    "They're always bugging us about something or other.",
    "Well, my boyfriend made me come here.",
    "He says I'm depressed much of the time.",
    "It's true. I am unhappy.",
    "I need some help, that much seems certain.",
    "Perhaps I could learn to get along with my mother.",
    "My mother takes care of me.",
    "My father.",
    "You are like my father in some ways.",
    "You are not very aggressive but I think you don't want me to notice that.",
    "You don't argue with me.",
    "You are afraid of me.",
    "My father is afraid of everybody.",
    "Bullies.",
]

# One trigger per default rule of chatbot.brains.rules, and near misses that must fall through.
RULE_TRIGGERS = [
    "hello",
    "Hi there!",
    "good morning",
    "my name is Ada",
    "what's my name?",
    "help",
    "what can you do?",
    "what time is it?",
    "what is the date",
    "what day is it today",
    "thanks",
    "thank you so much!",
    "how are you doing?",
    "who are you?",
    "are you an AI?",
    "test",
    "good bot",
    "it works!",
    "good night",
    "thanks, bye!",
    "bye",
    "see you later",
    "thanks, but how do I cancel a task?",
    "hello, is the event loop blocked?",
]

# What a room of learners types during the workshop: questions in their own words, small talk,
# complaints, long lines pasted from a traceback, and ELIZA's territory.
WORKSHOP_CHAT = [
    "hi",
    "is this thing on?",
    "what is asyncio",
    "how do I run two coroutines at once?",
    "my notebook says this event loop is already running, help",
    "ok that worked thanks",
    "I am confused about await",
    "why is my server so slow when I call requests.get inside the handler",
    "I think my code is blocking the loop but I'm not sure where",
    'Traceback (most recent call last): File "server.py", line 12, in handler '
    "await websocket.send(reply) websockets.exceptions.ConnectionClosedOK: sent 1000 (OK); "
    "then received 1000 (OK)",
    "what's the difference between a task and a coroutine",
    "can you remember what I said earlier?",
    "I feel like everybody else already knows this stuff",
    "my colleague always says Python is too slow for servers",
    "You are a very patient bot",
    "I don't understand why we need websockets at all, my boss wants REST",
    "Perhaps I should just use threads like I always did, because threads are what I know and "
    "everyone at work uses them, but I can't remember how the GIL works with them",
    "what port should I use",
    "lol",
    "how many clients can one server handle?",
    "I need a coffee",
    "Do you dream of electric sheep?",
    "My mother says I spend too much time on the computer",
    "what is backpressure",
    "I was wondering whether I could deploy this on my raspberry pi at home, and what would "
    "happen if a hundred people connected to it at the same time while I was also streaming video",
    "bye for now",
]

CORPORA = ("faq", "cacm", "rules", "chat")


def long_messages(chars: int = Limits().max_message_chars) -> dict[str, list[str]]:
    """Messages as long as the server accepts, in the shapes that cost a brain most (``--long``).

    What a client can make the event loop do with one message: every word known, every word
    made up (each a possible typo), one endless word, no question word to stop a search for
    one, a pasted traceback, feelings for ELIZA, other alphabets, identifiers. Each comes after
    a question of the knowledge base, so that a brain with a topic has one. Made-up words come
    from a seeded generator: the same messages on every run.
    """
    knowledge = KnowledgeBase.load()
    known = sorted({word for entry in knowledge.entries for word in entry.question.split()})
    rng = random.Random(16)

    def made_up() -> str:
        return "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(5, 9)))

    def fill(words: Callable[[], str]) -> str:
        text = ""
        while len(text) < chars:
            text += words() + " "
        return text[:chars]

    shapes = [
        fill(lambda: rng.choice(known)),
        fill(made_up),
        "x" * chars,
        fill(lambda: rng.choice("abc")),
        fill(lambda: "why?"),
        fill(lambda: 'File "x.py", line 3, in f') + "\nRuntimeError: no running event loop",
        fill(lambda: "I feel sad because my mother"),
        fill(lambda: "ça va très bien, merci beaucoup"),
        fill(lambda: "ConnectionClosedError to_thread asyncio.run()"),
    ]
    return {"long": [message for shape in shapes for message in ("what is the event loop", shape)]}


def corpus(knowledge: KnowledgeBase | None = None) -> dict[str, list[str]]:
    """The messages each brain answers, by corpus name (``faq``, ``cacm``, ``rules``, ``chat``)."""
    knowledge = knowledge if knowledge is not None else KnowledgeBase.load()
    faq = [text for entry in knowledge.entries for text in (entry.question, *entry.phrasings)]
    return {
        "faq": faq,
        "cacm": list(CACM_1966),
        "rules": list(RULE_TRIGGERS),
        "chat": list(WORKSHOP_CHAT),
    }


def machine_speed(number: int = 10_000, repeat: int = 5) -> float:
    """Microseconds for ``sum(range(1000))`` here, the best of ``repeat`` (``python -m timeit``).

    The same brain costs three times as much on one machine as on another, and figures taken
    in different sessions are compared: this says how fast the machine was when they were.
    """
    best = min(timeit.repeat("sum(range(1000))", number=number, repeat=repeat))
    return round(best / number * 1e6, 1)


def machine_jitter(times: int = 5_000) -> float:
    """How much this machine alone spreads a fixed piece of work: ``sum(range(6000))`` (about
    a typical reply's CPU time) timed ``times`` times as a reply is, its p99 over its median.

    On a quiet machine it is close to 1. On a shared one, the same work costs more now and then
    (other tenants, interrupts, caches), and every brain's p99 grows by as much: this says how
    much of a p99 is the machine's.
    """
    values = []
    for _ in range(times):
        start = time.thread_time_ns()
        sum(range(6000))
        values.append(time.thread_time_ns() - start)
    values.sort()
    return round(_percentile(values, 0.99) / statistics.median(values), 2)


def _percentile(sorted_values: Sequence[int], fraction: float) -> int:
    """The nearest-rank percentile of sorted values."""
    index = max(0, min(len(sorted_values) - 1, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


async def _answer(brain: Brain, message: str, conversation: Conversation) -> tuple[int, int, int]:
    """Time one reply as the server's channel worker drives it, in nanoseconds: the thread's CPU
    time for the whole reply and up to its first chunk, and the wall-clock time of the whole.

    CPU time (``time.thread_time_ns``) leaves out the moments the machine gave the core to
    another process, which on a shared two-core machine move wall-clock figures by a third from
    run to run. Each reading costs about half a microsecond, included in the figures.

    The first chunk is when the brain has done its thinking: until then it holds the event loop
    (the shipped brains compute the whole reply first). The rest is streaming: ELIZA gives the
    loop a turn between words. A declined message (NoAnswer) costs its time too.
    """
    wall, cpu = time.perf_counter_ns(), time.thread_time_ns()
    first = 0
    try:
        async with contextlib.aclosing(brain.stream(message, conversation)) as stream:  # type: ignore[type-var]
            async for chunk in stream:
                if not first:
                    first = time.thread_time_ns() - cpu
                if not isinstance(chunk, str):
                    raise TypeError(f"brain {brain.name!r} yielded {chunk!r}, not str")
    except NoAnswer:
        pass
    total = time.thread_time_ns() - cpu
    return total, first or total, time.perf_counter_ns() - wall


def _figures(values: list[int]) -> dict[str, Any]:
    values = sorted(values)
    if not values:
        return {"replies": 0, "median_us": None, "p99_us": None, "max_us": None}
    return {
        "replies": len(values),
        "median_us": round(statistics.median(values) / 1000, 1),
        "p99_us": round(_percentile(values, 0.99) / 1000, 1),
        "max_us": round(values[-1] / 1000, 1),
    }


async def measure(
    brain: Brain, corpora: dict[str, list[str]], *, replies: int, seconds: float
) -> dict[str, Any]:
    """Replay every corpus through ``brain`` until ``replies`` replies or ``seconds`` seconds.

    Returns:
        The CPU time of whole replies (``replies``, ``median_us``, ``p99_us``, ``max_us``), the
        same up to the first chunk (``first_chunk``), in wall-clock time (``wall_clock``) and
        per corpus (``corpora``), the ``slowest`` messages (their median CPU time), and the
        p99 of each message's median (``per_message_p99_us``: None unless some message was
        answered three times).
    """
    for messages in corpora.values():  # one unmeasured pass: caches, first-use imports
        conversation = Conversation()
        for message in messages:
            await _answer(brain, message, conversation)
    times: dict[str, list[int]] = {name: [] for name in corpora}
    firsts: list[int] = []
    walls: list[int] = []
    per_message: dict[str, list[int]] = {}
    count = 0
    deadline = time.perf_counter() + seconds
    while count < replies and time.perf_counter() < deadline:
        for name, messages in corpora.items():
            conversation = Conversation()
            for message in messages:
                total, first, wall = await _answer(brain, message, conversation)
                times[name].append(total)
                firsts.append(first)
                walls.append(wall)
                per_message.setdefault(message, []).append(total)
                count += 1
                if count >= replies:
                    break
            if count >= replies:
                break
    slowest = sorted(per_message.items(), key=lambda item: -statistics.median(item[1]))[:5]
    # Each message's own cost, the median of its replies (messages replayed 3 times or more):
    # their p99 is the brain's, with the moments the machine was slower taken out.
    medians = sorted(int(statistics.median(v)) for v in per_message.values() if len(v) >= 3)
    return {
        **_figures([t for values in times.values() for t in values]),
        "per_message_p99_us": round(_percentile(medians, 0.99) / 1000, 1) if medians else None,
        "first_chunk": _figures(firsts),
        "wall_clock": _figures(walls),
        "corpora": {name: _figures(values) for name, values in times.items()},
        "slowest": [
            {"message": message[:80], "median_us": round(statistics.median(values) / 1000, 1)}
            for message, values in slowest
        ],
    }


def build_parser() -> argparse.ArgumentParser:
    """The parser for ``python benchmarks/brains.py``."""
    parser = argparse.ArgumentParser(
        prog="python benchmarks/brains.py",
        description="Microseconds per reply of each shipped brain, in-process, no network.",
    )
    parser.add_argument(
        "--brains", default=",".join(BRAINS), help="brains, comma-separated (%(default)s)"
    )
    parser.add_argument(
        "--replies", type=int, default=20_000, help="replies per brain at most (%(default)s)"
    )
    parser.add_argument(
        "--seconds", type=float, default=5.0, help="seconds per brain at most (%(default)s)"
    )
    parser.add_argument("--smoke", action="store_true", help="a second or two: what CI runs")
    parser.add_argument(
        "--long",
        action="store_true",
        help="only messages as long as the server accepts, in their costliest shapes",
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the JSON report")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Measure, print a table, write the JSON report; return the exit status."""
    args = build_parser().parse_args(argv)
    replies, seconds = (
        (SMOKE["replies"], SMOKE["seconds"])
        if args.smoke
        else (
            args.replies,
            args.seconds,
        )
    )
    names = [name.strip() for name in args.brains.split(",") if name.strip()]
    if "llm" in names:
        print("error: llm needs an HTTP endpoint; it is not measured here", file=sys.stderr)
        return 2
    corpora = long_messages() if args.long else corpus()
    results: dict[str, Any] = {}
    speed = machine_speed(1_000, 3) if args.smoke else machine_speed()
    jitter = machine_jitter(500) if args.smoke else machine_jitter()
    print(f"this machine: sum(range(1000)) in {speed} µs (python -m timeit)")
    print(f"its spread: a fixed piece of work timed again and again has a p99 {jitter}x its median")
    print("CPU microseconds per reply (thread time); first chunk = the brain's thinking;")
    print("msg p99 = the p99 of each message's median: the brain's own, without the spread")
    print(
        f"{'brain':<10} {'replies':>8} {'median':>8} {'p99':>8} {'max':>8}"
        f" {'1st chunk p50':>14} {'p99':>6} {'wall p99':>9} {'msg p99':>8}"
    )
    for name in names:
        brain = load_brain(name)  # loads its data here, outside the timed loop
        # The collector as `python -m chatbot` sets it once its brain is loaded: young objects
        # collected less often, and what start-up made (the brain's index) frozen out of every
        # collection. Without it, a full collection walks that index inside some reply.
        if hasattr(cli, "tune_gc"):  # a package older than it (on PYTHONPATH) has none
            cli.tune_gc()
        figures = asyncio.run(measure(brain, corpora, replies=int(replies), seconds=seconds))
        results[name] = figures
        print(
            f"{name:<10} {figures['replies']:>8} {figures['median_us']:>8} "
            f"{figures['p99_us']:>8} {figures['max_us']:>8}"
            f" {figures['first_chunk']['median_us']:>14} {figures['first_chunk']['p99_us']:>6}"
            f" {figures['wall_clock']['p99_us']:>9} {figures['per_message_p99_us'] or '-':>8}"
        )
    report = {
        "schema": SCHEMA,
        "what": "CPU microseconds (thread time) per reply and up to its first chunk, and "
        "wall-clock microseconds per reply; in-process, no network, the brain's stream driven "
        "in a running asyncio loop",
        "command": [sys.executable, *sys.argv],
        "when": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "sum_range_1000_us": speed,
            "fixed_work_p99_over_median": jitter,
        },
        "corpora": {name: len(messages) for name, messages in corpora.items()},
        "limits": {"replies": replies, "seconds": seconds},
        "brains": results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    name = "brains-long" if args.long else "brains"
    path = args.out / (f"{name}-smoke.json" if args.smoke else f"{name}.json")
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
