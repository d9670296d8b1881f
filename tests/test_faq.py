"""The faq brain: parsing the knowledge base, BM25 ranking, the threshold, streaming."""

from __future__ import annotations

import asyncio
import math
import random
from pathlib import Path

import pytest

from chatbot.brains import faq
from chatbot.brains.base import Brain, Conversation, NoAnswer
from chatbot.brains.faq import (
    _WORD,
    DEFAULT_THRESHOLD,
    MAX_LETTERS_CHARS,
    MAX_QUESTION_CHARS,
    Entry,
    FaqBrain,
    KnowledgeBase,
    KnowledgeBaseError,
    Match,
    _words,
    letter_pieces,
    tokens,
    word_set,
)
from chatbot.errors import ChatbotError

# Questions written the way learners ask them, each with the entry that should answer it. They
# are not copies of the knowledge base's phrasings. With OFF_TOPIC they are also the figures
# behind DEFAULT_THRESHOLD (see its docstring).
ON_TOPIC = [
    ("What is asyncio?", "What is asyncio?"),
    ("why would I use asyncio at all", "What is asyncio?"),
    ("What is the event loop?", "What is the event loop?"),
    ("how does the event loop work", "What is the event loop?"),
    ("What's a coroutine?", "What is a coroutine?"),
    ("I called my async def function but nothing ran", "What is a coroutine?"),
    ("what does await actually do", "What does await do?"),
    ("when does asyncio switch to another task?", "What does await do?"),
    ("how do I create a task", "What is a task?"),
    ("run a coroutine in the background", "What is a task?"),
    ("my task was garbage collected", "What is a task?"),
    ("how do I use asyncio.gather?", "How do I run several coroutines at the same time?"),
    ("run many coroutines concurrently", "How do I run several coroutines at the same time?"),
    ("TaskGroup vs gather", "How do I run several coroutines at the same time?"),
    ("how do I set a timeout on an await", "How do I add a timeout?"),
    ("asyncio.wait_for example", "How do I add a timeout?"),
    ("how can I cancel a task?", "How does cancellation work?"),
    ("what should I do with CancelledError", "How does cancellation work?"),
    ("asyncio.run() doesn't work in my notebook", "Why does asyncio.run() fail in Jupyter?"),
    (
        "can I use await at the top level of a Jupyter cell?",
        "Why does asyncio.run() fail in Jupyter?",
    ),
    (
        "RuntimeError: This event loop is already running",
        'What does "This event loop is already running" mean?',
    ),
    (
        "run_until_complete gives an error in jupyter",
        'What does "This event loop is already running" mean?',
    ),
    ("should I pip install nest_asyncio?", "Should I use nest_asyncio?"),
    ("what's wrong with nest-asyncio", "Should I use nest_asyncio?"),
    ("is time.sleep bad in a coroutine?", "What does blocking the event loop mean?"),
    ("my server freezes while it handles a request", "What does blocking the event loop mean?"),
    (
        "how do I call blocking code from asyncio",
        "How do I run blocking code without freezing the server?",
    ),
    ("how to use asyncio.to_thread", "How do I run blocking code without freezing the server?"),
    (
        "heavy computation slows down my server",
        "How do I run CPU-heavy work without slowing the loop?",
    ),
    (
        "how do I use a ProcessPoolExecutor with asyncio?",
        "How do I run CPU-heavy work without slowing the loop?",
    ),
    (
        "RuntimeError: no running event loop",
        'What does "RuntimeError: no running event loop" mean?',
    ),
    ("is get_event_loop deprecated?", 'What does "RuntimeError: no running event loop" mean?'),
    (
        "RuntimeWarning: coroutine 'main' was never awaited",
        'What does "coroutine was never awaited" mean?',
    ),
    ("does asyncio use threads?", "Is asyncio multithreaded?"),
    ("can asyncio use multiple cores", "Is asyncio multithreaded?"),
    ("how do I measure the lag of the event loop", "How can I see that the event loop is blocked?"),
    ("how do I use LagMonitor?", "How can I see that the event loop is blocked?"),
    (
        "the interrupt button does nothing and my cell hangs",
        "My cell never finishes and interrupt does nothing",
    ),
    (
        "await server.serve_forever() never finishes in the notebook",
        "My cell never finishes and interrupt does nothing",
    ),
    ("print in my handler doesn't show anything", "Why doesn't print() in my server show up?"),
    ("what's a websocket", "What is a WebSocket?"),
    ("difference between websockets and http", "What is a WebSocket?"),
    ("how do I create a websocket server", "How do I write a WebSocket server in Python?"),
    ("show me how to use websockets serve", "How do I write a WebSocket server in Python?"),
    ("how do I write a websocket client?", "How do I connect to a WebSocket server?"),
    (
        "how to send a message with websockets connect and read the answer",
        "How do I connect to a WebSocket server?",
    ),
    (
        "TypeError: handler() missing 1 required positional argument: 'path'",
        "Why does my handler fail with \"missing 1 required positional argument: 'path'\"?",
    ),
    (
        "where is websocket.path now?",
        "Why does my handler fail with \"missing 1 required positional argument: 'path'\"?",
    ),
    ("what do the websocket close codes mean", "What do WebSocket close codes mean?"),
    ("what is close code 1001", "What do WebSocket close codes mean?"),
    ("why does my connection get closed with code 1006?", "Why did my connection close with 1006?"),
    ("1006", "Why did my connection close with 1006?"),
    ("connection closed 1011 internal error", "Why did my connection close with 1011?"),
    ("what does 1011 mean", "Why did my connection close with 1011?"),
    ("close code 1009", "Why did my connection close with 1009?"),
    ("my message is too big for websockets", "Why did my connection close with 1009?"),
    ("how do I change max_size", "Why did my connection close with 1009?"),
    (
        "how does ping/pong keepalive work in websockets?",
        "What are ping_interval and ping_timeout?",
    ),
    ("what is ping_timeout", "What are ping_interval and ping_timeout?"),
    ("why port 0?", "What does port 0 mean?"),
    ("how do I get a random free port", "What does port 0 mean?"),
    (
        "OSError: [Errno 98] error while attempting to bind on address: address already in use",
        'What does "address already in use" mean?',
    ),
    ("port already in use after re-running a cell", 'What does "address already in use" mean?'),
    ("why do I need proxy=None", "Why does my client fail to connect to 127.0.0.1?"),
    (
        "my http_proxy breaks the websocket client",
        "Why does my client fail to connect to 127.0.0.1?",
    ),
    ("what's a subprotocol", "What are WebSocket subprotocols?"),
    (
        "how do I check the origin of a websocket connection",
        "How do I stop other websites from connecting to my server?",
    ),
    ("what is CSWSH", "How do I stop other websites from connecting to my server?"),
    ("how do I use python -m websockets", "How do I chat with a server from the terminal?"),
    ("command line websocket client", "How do I chat with a server from the terminal?"),
    (
        "how do I broadcast a message to all clients",
        "How do I send a message to every connected client?",
    ),
    ("426 Upgrade Required", 'Why does my browser show "426 Upgrade Required"?'),
    (
        "the chat page can't connect on Binder",
        "Why can't my browser reach the server on JupyterHub or Binder?",
    ),
    ("what is this workshop about?", "What does this workshop cover?"),
    ("which notebooks are there", "What does this workshop cover?"),
    ("how do I install everything for the workshop", "How do I run the workshop?"),
    ("how do I start jupyter lab for the workshop", "How do I run the workshop?"),
    ("how do I run python -m chatbot", "How do I start the chatbot server from a terminal?"),
    (
        "what options does the chatbot command have",
        "How do I start the chatbot server from a terminal?",
    ),
    ("what is a brain in this chatbot", "What is a brain?"),
    ("how do I write a new brain", "What is a brain?"),
    ("how do I stop the bot in the middle of a reply", "How do I stop a reply?"),
    ("what can I ask you?", "What can you answer?"),
]

# The questions above whose entry does not come first, with why.
KNOWN_MISSES = {
    "how do I write a websocket client?": "'write' and 'websocket' find the testing entry",
}

# Small talk (the rules and ELIZA's job), other topics, and near misses that share a word or two
# with the knowledge base ("install", "threads", "list", "python").
OFF_TOPIC = [
    "hello",
    "hi there, how are you?",
    "thanks!",
    "tell me a joke",
    "I feel sad today",
    "my mother never listens to me",
    "What's the weather like in Paris?",
    "who won the world cup in 2018",
    "what is the capital of France",
    "recommend a good pizza recipe",
    "how do I make a pandas dataframe",
    "how do I reverse a list in Python",
    "what is a decorator in python",
    "how do threads work in Java?",
    "explain quantum computing",
    "how do I center a div in CSS",
    "how do I exit vim",
    "what is Django",
    "how do I deploy to Kubernetes",
    "write me a poem about the sea",
    "what time is it?",
    "can you translate this into German",
    "what is the meaning of life",
    "how do I fix my bicycle",
    "is it going to rain tomorrow",
    "what's 2 + 2",
    "how do I learn to play guitar",
    "how much memory does my laptop have",
    "how do I sort a dictionary by value",
    "what is a REST API",
    "yes",
    "no, I don't think so",
    "ok",
    "why?",
    "what do you mean?",
    "I don't understand",
]

# Off-topic questions that share rare words with entries ("name", "garbage", "machine", "learn"):
# the faq brain alone answers them; the assistant, which asks more of a question without a word
# of the field, does not (tests/test_assistant.py). "install" is half of "how do I install numpy"
# (numpy weighs as much, in one other entry): its confidence is 0.5, the faq brain's threshold,
# give or take what any new phrasing changes in BM25's weights (0.47, 0.499, 0.5006 as the
# knowledge base grew). The assistant's LEAD_THRESHOLD keeps a margin above it.
OFF_TOPIC_WITH_KNOWN_WORDS = [
    "what is your name?",
    "how does garbage collection work in Java",
    "what is machine learning",
    "how do I install numpy",
]

EXTRA = """\
# Our course's own questions

## When is the lunch break?
Also: what time do we eat?
also: is there a break

Lunch is at 12:30, in the room next door. We start again at 13:30.
"""


@pytest.fixture(scope="module")
def knowledge() -> KnowledgeBase:
    return KnowledgeBase.load()


async def reply(brain: Brain, message: str) -> list[str]:
    """The chunks of a brain's reply."""
    return [chunk async for chunk in brain.stream(message, Conversation())]


# The shipped knowledge base


def test_shipped_knowledge_base_loads_from_the_package(knowledge: KnowledgeBase) -> None:
    assert 90 <= len(knowledge) <= 150
    assert len(knowledge.entries) == len(knowledge)
    assert repr(knowledge) == f"<KnowledgeBase: {len(knowledge)} entries>"
    first = knowledge.entries[0]
    assert Path(first.source).parts[-3:] == ("chatbot", "data", "faq.md")
    assert first.question == "What is asyncio?"
    assert first.phrasings[0] == "what is asyncio for?"
    assert first.answer.startswith("`asyncio` is Python's standard library")


def test_every_question_and_phrasing_finds_its_own_entry(knowledge: KnowledgeBase) -> None:
    # Guards the knowledge base as instructors extend it: a new entry must not steal the
    # phrasings of another.
    for entry in knowledge.entries:
        for text in (entry.question, *entry.phrasings):
            best = knowledge.search(text, limit=1)[0]
            assert best.entry is entry, f"{text!r} finds {best.entry.question!r}"
            assert best.confidence >= DEFAULT_THRESHOLD, (text, best.confidence)


# Ranking


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        pytest.param(question, expected, marks=pytest.mark.xfail(reason=KNOWN_MISSES[question]))
        if question in KNOWN_MISSES
        else (question, expected)
        for question, expected in ON_TOPIC
    ],
)
def test_on_topic_question_ranks_its_entry_first(
    knowledge: KnowledgeBase, question: str, expected: str
) -> None:
    found = knowledge.search(question)
    assert found, f"nothing found for {question!r}"
    assert found[0].entry.question == expected


def test_default_threshold_answers_most_on_topic_questions_and_none_wrongly(
    knowledge: KnowledgeBase,
) -> None:
    right = wrong = 0
    for question, expected in ON_TOPIC:
        best = knowledge.search(question, limit=1)
        if best and best[0].confidence >= DEFAULT_THRESHOLD:
            right += best[0].entry.question == expected
            wrong += best[0].entry.question != expected
    # Measured (stemmed words, synonyms, answers indexed at 0.3): 79 of 83 right, 3 wrong
    # (the ranking misses in KNOWN_MISSES), 1 handed over to the next brain. The assistant
    # puts a second threshold on questions without a word of the field (tests/test_assistant.py).
    assert right >= 76
    assert wrong <= 3


@pytest.mark.parametrize("question", OFF_TOPIC)
async def test_off_topic_question_is_handed_over(question: str) -> None:
    brain = FaqBrain()
    chunks = brain.stream(question, Conversation())
    with pytest.raises(NoAnswer):
        await anext(chunks)  # raised before the first chunk, so a chain can ask the next brain


def test_search_returns_matches_best_first(knowledge: KnowledgeBase) -> None:
    found = knowledge.search("What does port 0 mean?")
    assert len(found) == 3
    assert all(isinstance(match, Match) for match in found)
    assert found[0].entry.question == "What does port 0 mean?"
    assert found[0].confidence == 1.0
    assert [m.score for m in found] == sorted((m.score for m in found), reverse=True)
    assert all(0.0 < m.confidence <= 1.0 for m in found)
    entry, score, confidence = found[0]  # a named tuple
    assert (entry, score, confidence) == (found[0].entry, found[0].score, found[0].confidence)
    assert len(knowledge.search("What does port 0 mean?", limit=1)) == 1


def test_unknown_words_lower_the_confidence(knowledge: KnowledgeBase) -> None:
    clear = knowledge.search("what is a coroutine")[0]
    padded = knowledge.search("what is a coroutine, zxqv aardvark")[0]
    assert clear.entry is padded.entry
    assert clear.score == pytest.approx(padded.score)  # unknown words add nothing...
    assert padded.confidence < clear.confidence  # ...but count against the confidence


def test_search_of_nothing_searchable_finds_nothing(knowledge: KnowledgeBase) -> None:
    assert knowledge.search("") == []
    assert knowledge.search("what is it?") == []  # only stop words
    assert knowledge.search("zebra quokka") == []  # only unknown words


def test_search_limit_must_be_positive(knowledge: KnowledgeBase) -> None:
    with pytest.raises(ValueError, match=r"^limit must be 1 or more, got 0$"):
        knowledge.search("event loop", limit=0)


def test_tokens_lower_case_drop_stop_words_stem_and_join_synonyms() -> None:
    assert tokens("What's the event loop, and why are tasks using asyncio.to_thread?") == [
        "event",
        "loop",
        "task",
        "asyncio",
        "to_thread",
        "thread",
        "asyncio.to_thread",
    ]
    assert tokens("Blocked, blocking, blocks; stuck") == ["block"] * 4
    assert tokens("ws coro") == ["websocket", "coroutin"]
    assert tokens("ConnectionClosedError") == ["connectionclosederror", "connect", "close", "error"]
    assert tokens("WebSockets' close codes: 1000, 1001!") == [
        "websocket",
        "close",
        "code",
        "1000",
        "1001",
    ]
    assert tokens("processes, entries, status, analysis") == [
        "process",
        "entri",
        "status",
        "analysi",
    ]
    assert tokens("nest-asyncio") == ["nest", "asyncio"]
    assert tokens("Don't you know it?") == []


def test_bm25_parameters_change_the_scores() -> None:
    entries = KnowledgeBase.load().entries
    default = KnowledgeBase(entries).search("event loop", limit=1)[0]
    no_length = KnowledgeBase(entries, b=0.0).search("event loop", limit=1)[0]
    assert default.score != no_length.score


# The threshold


async def test_answer_at_the_threshold_and_hand_over_just_below_it(
    knowledge: KnowledgeBase,
) -> None:
    question = "how do I broadcast a message to all clients"
    best = knowledge.search(question, limit=1)[0]
    assert 0.0 < best.confidence < 1.0
    at = FaqBrain(knowledge, threshold=best.confidence)
    assert "".join(await reply(at, question)) == best.entry.answer
    above = FaqBrain(knowledge, threshold=math.nextafter(best.confidence, 1.0))
    with pytest.raises(NoAnswer, match=r"^no FAQ entry matches 'how do I broadcast"):
        await reply(above, question)


async def test_threshold_zero_answers_anything_with_a_known_word(knowledge: KnowledgeBase) -> None:
    brain = FaqBrain(knowledge, threshold=0.0)
    assert await reply(brain, "how do I install numpy")  # 0.5: at the default
    with pytest.raises(NoAnswer):
        await reply(brain, "zebra quokka")  # no known word: no match at all


def test_threshold_must_be_between_0_and_1(knowledge: KnowledgeBase) -> None:
    with pytest.raises(ValueError, match=r"^threshold must be between 0 and 1, got 50$"):
        FaqBrain(knowledge, threshold=50)


async def test_long_message_is_handed_over_without_being_read() -> None:
    question = "What is the event loop? "
    message = question * (MAX_QUESTION_CHARS // len(question) + 1)
    with pytest.raises(NoAnswer):
        await reply(FaqBrain(), message)


# Streaming


async def test_answer_streams_a_sentence_at_a_time(knowledge: KnowledgeBase) -> None:
    brain = FaqBrain(knowledge)
    chunks = await reply(brain, "What is the event loop?")
    entry = knowledge.search("What is the event loop?", limit=1)[0].entry
    assert "".join(chunks) == entry.answer
    assert chunks[0] == "The event loop is the scheduler at the heart of asyncio. "
    assert len(chunks) == 3


async def test_every_answer_streams_in_chunks_that_join_to_it(knowledge: KnowledgeBase) -> None:
    brain = FaqBrain(knowledge)
    for entry in knowledge.entries:
        chunks = await reply(brain, entry.question)
        assert "".join(chunks) == entry.answer
        assert len(chunks) > 1, entry.question  # every shipped answer has several sentences
        assert all(chunks), entry.question


async def test_stopping_a_reply_half_way_closes_the_stream(knowledge: KnowledgeBase) -> None:
    chunks = FaqBrain(knowledge).stream("What is a task?", Conversation())
    first = await anext(chunks)
    assert first.startswith("`asyncio.create_task(coro())`")
    await chunks.aclose()  # type: ignore[attr-defined]  # what a consumer does on Stop
    with pytest.raises(StopAsyncIteration):
        await anext(chunks)


async def test_brain_is_a_brain_and_shares_the_shipped_knowledge() -> None:
    brain = FaqBrain()
    assert isinstance(brain, Brain)
    assert brain.name == "faq"
    assert brain.threshold == DEFAULT_THRESHOLD
    assert FaqBrain().knowledge is brain.knowledge  # read and indexed once, then shared
    assert repr(brain) == f"<FaqBrain: {len(brain.knowledge)} entries, threshold 0.5>"


async def test_concurrent_conversations_get_their_own_answers(knowledge: KnowledgeBase) -> None:
    brain = FaqBrain(knowledge)
    questions = ["What is a task?", "What does port 0 mean?", "What is a WebSocket?"]
    replies = await asyncio.gather(*(reply(brain, q) for q in questions))
    for question, chunks in zip(questions, replies, strict=True):
        assert "".join(chunks) == knowledge.search(question, limit=1)[0].entry.answer


# An instructor's own entries


async def test_instructor_added_entry_is_found_and_answered() -> None:
    shipped = KnowledgeBase.load()
    extra = KnowledgeBase.parse(EXTRA, "course.md")
    assert extra.entries == (
        Entry(
            question="When is the lunch break?",
            phrasings=("what time do we eat?", "is there a break"),
            answer="Lunch is at 12:30, in the room next door. We start again at 13:30.",
            source="course.md",
            line=3,
        ),
    )
    combined = KnowledgeBase([*shipped.entries, *extra.entries])
    assert len(combined) == len(shipped) + 1
    brain = FaqBrain(combined)
    for question in ["when's lunch?", "When do we eat?", "is there a lunch break"]:
        chunks = await reply(brain, question)
        assert chunks == ["Lunch is at 12:30, in the room next door. ", "We start again at 13:30."]
    # The shipped entries still answer as before.
    assert "".join(await reply(brain, "what does await do")).startswith("`await something`")


def test_load_reads_an_instructors_file(tmp_path: Path) -> None:
    path = tmp_path / "course.md"
    path.write_text(EXTRA, encoding="utf-8")
    knowledge = KnowledgeBase.load(path)
    assert [entry.question for entry in knowledge.entries] == ["When is the lunch break?"]
    assert knowledge.entries[0].source == str(path)


def test_parse_keeps_the_answers_markdown() -> None:
    text = """\
Preamble: ignored, and so is this line:
Also: not a phrasing, this is the preamble.

## How do I write a comment?

Like this:

```python
## a comment, not a new entry
x = 1
```

### Details

A second paragraph.
## What next?
The next entry.
"""
    first, second = KnowledgeBase.parse(text).entries
    assert first.question == "How do I write a comment?"
    assert first.phrasings == ()
    assert first.answer == (
        "Like this:\n\n```python\n## a comment, not a new entry\nx = 1\n```\n\n"
        "### Details\n\nA second paragraph."
    )
    assert (first.source, first.line) == ("<string>", 4)
    assert (second.question, second.answer, second.line) == ("What next?", "The next entry.", 16)


# Malformed knowledge bases: the error names the file and the line


def test_entry_without_an_answer_is_reported_with_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "faq.md"
    path.write_text("# FAQ\n\n## When is lunch?\nAlso: lunch time?\n\n## Where?\nHere.\n")
    with pytest.raises(KnowledgeBaseError) as caught:
        KnowledgeBase.load(path)
    assert str(caught.value) == (
        f"{path}, line 3: the entry 'When is lunch?' has no answer; write the answer below its "
        "heading and its 'Also:' lines, before the next '## ' heading"
    )
    assert (caught.value.source, caught.value.line) == (str(path), 3)
    assert isinstance(caught.value, ChatbotError)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "## When?\nNow.\n##\nAn answer.\n",
            "extra.md, line 3: a '## ' heading without a question; write the question after '## '",
        ),
        (
            "## When?\nAlso:\nNow.\n",
            "extra.md, line 2: an empty 'Also:' line; write another way to ask 'When?' after "
            "'Also:', or delete the line",
        ),
        (
            "## When?\nNow.\nAlso: at what time?\n",
            "extra.md, line 3: an 'Also:' line inside the answer of 'When?'; put other "
            "phrasings right below the question's heading",
        ),
        (
            "## When?\nThen:\nNow.\n",
            "extra.md, line 2: an empty 'Then:' line; write a follow-up of 'When?' after "
            "'Then:', or delete the line",
        ),
        (
            "## When?\nNow.\nThen: and where? => Where?\n",
            "extra.md, line 3: a 'Then:' line inside the answer of 'When?'; put follow-ups "
            "right below the question's heading",
        ),
        (
            "## When?\nThen: and where? Where?\nNow.\n",
            "extra.md, line 2: write a 'Then:' line as 'Then: follow-up => question of its entry'",
        ),
        (
            "## When is lunch?\nThen: and where? => Where is it?\nAt 12.\n\n"
            "## Where do we eat?\nHere.\n",
            "extra.md, line 1: the 'Then: and where?' line of 'When is lunch?' names 'Where is "
            "it?', which is no entry's question; copy its '## ' heading exactly",
        ),
        (
            "## When?\n```\nnow\n\n## Where?\nHere.\n",
            "extra.md, line 2: this code fence is never closed; close it with a line '```'",
        ),
        (
            "# Our FAQ\n\nNo entries yet.\n",
            "extra.md: no entries found; each entry starts with a '## ' heading (the question), "
            "with its answer below",
        ),
        (
            "## When is lunch?\nAt 12.\n\n## When's lunch??\nAt noon.\n",
            "extra.md, line 4: the question \"When's lunch??\" has the same words as 'When is "
            "lunch?' (extra.md, line 1); merge the two entries or reword one",
        ),
        (
            "## What is it?\nA thing.\n",
            "extra.md, line 1: the question 'What is it?' has only stop words, nothing to search "
            "for; reword it or add an 'Also:' line",
        ),
    ],
    ids=[
        "empty heading",
        "empty Also",
        "Also in answer",
        "empty Then",
        "Then in answer",
        "Then without arrow",
        "Then names no entry",
        "open fence",
        "no entries",
        "duplicate",
        "stop words only",
    ],
)
def test_malformed_knowledge_base_gets_an_exact_error(text: str, message: str) -> None:
    with pytest.raises(KnowledgeBaseError) as caught:
        KnowledgeBase.parse(text, "extra.md")
    assert str(caught.value) == message


# Then: lines, what learners ask next after an entry

THEN = """\
## How do I add a timeout?
Then: and for several tasks at once? => How do I put one deadline on several tasks?
Also: timeout for a coroutine
Then: what if it fires => How do I add a timeout?
Wrap the await in `asyncio.timeout(5)`.

## How do I put one deadline on several tasks?
Put the `gather` inside one `asyncio.timeout`.
"""


def test_then_lines_are_read_apart_from_the_phrasings() -> None:
    first, second = KnowledgeBase.parse(THEN).entries
    assert first.phrasings == ("timeout for a coroutine",)
    assert first.then == (
        ("and for several tasks at once?", "How do I put one deadline on several tasks?"),
        ("what if it fires", "How do I add a timeout?"),
    )
    assert first.answer == "Wrap the await in `asyncio.timeout(5)`."
    assert second.then == ()


def test_follow_on_finds_the_entry_of_the_most_alike_then_line() -> None:
    kb = KnowledgeBase.parse(THEN)
    timeout = kb.entry("How do I add a timeout?")
    several = kb.entry("How do I put one deadline on several tasks?")
    assert timeout is not None and several is not None
    assert kb.follow_on(timeout, "and with several tasks") is several
    assert kb.follow_on(timeout, "what if the timeout fires") is timeout
    # Nothing alike, or a topic without Then: lines: no entry.
    assert kb.follow_on(timeout, "who won the football") is None
    assert kb.follow_on(timeout, "and?") is None
    assert kb.follow_on(several, "and for several tasks at once?") is None


def test_every_shipped_then_line_finds_its_own_entry(knowledge: KnowledgeBase) -> None:
    lost = []
    for entry in knowledge.entries:
        for asked, target in entry.then:
            found = knowledge.follow_on(entry, asked)
            if found is None or found.question != target:
                lost.append((entry.question, asked, target, found and found.question))
    assert not lost


def test_entry_added_twice_across_files_is_reported(knowledge: KnowledgeBase) -> None:
    again = KnowledgeBase.parse("## What is asyncio?\nMy own answer.\n", "course.md")
    with pytest.raises(KnowledgeBaseError) as caught:
        KnowledgeBase([*knowledge.entries, *again.entries])
    assert str(caught.value) == (
        "course.md, line 1: the question 'What is asyncio?' has the same words as 'What is "
        f"asyncio?' ({knowledge.entries[0].source}, line {knowledge.entries[0].line}); "
        "merge the two entries or reword one"
    )


def test_the_best_match_alone_is_the_first_of_the_ranking(knowledge: KnowledgeBase) -> None:
    # search(limit=1) finds the best entry without sorting; it must agree with the full ranking.
    questions = [text for entry in knowledge.entries for text in (entry.question, *entry.phrasings)]
    questions += [question for question, _ in ON_TOPIC] + OFF_TOPIC
    for question in questions:
        assert knowledge.search(question, limit=1) == knowledge.search(question, limit=5)[:1]


def test_words_are_those_of_the_word_pattern_ascii_or_not() -> None:
    # ASCII text is split without the regular expression: it must find the same words.
    rng = random.Random(2024)
    alphabet = [*"ab_ 1.-'\t\x00\x7f", "\u00b2", "é", "\u0660", "ǅ", "\u00a0"]
    for characters in ([c for c in alphabet if c.isascii()], alphabet):
        for _ in range(20_000):
            text = "".join(rng.choice(characters) for _ in range(rng.randint(0, 14)))
            assert _words(text) == _WORD.findall(text), text
    assert _words("asyncio.to_thread and __init__ or a__b_") == [
        "asyncio", "to_thread", "and", "init", "or", "a", "b",
    ]  # fmt: skip


def test_letter_pieces_are_each_words_three_characters_once_in_order() -> None:
    assert letter_pieces("Loop") == (" lo", "loo", "oop", "op ")
    assert letter_pieces("loop loop") == letter_pieces("loop")
    assert letter_pieces("a b") == (" a ", " b ")
    assert letter_pieces("   ") == ()


def test_long_words_are_cut_without_filling_the_cache() -> None:
    # A hostile client sending new long words (tokens, paths) must not grow the server's memory.
    before = faq._short_word_pieces.cache_info().currsize
    for n in range(200):
        word = f"{n:04d}" + "x" * 60
        assert letter_pieces(word)[:2] == (" " + word[:2], word[:3])
    assert faq._short_word_pieces.cache_info().currsize == before


def test_long_words_are_read_without_filling_the_word_caches() -> None:
    # The same for the words a search reads: each long word is read (and stemmed) each time.
    tokens("why")  # short words are kept: "why" is, from here on
    before = faq._word_tokens.cache_info().currsize
    for n in range(200):
        word = f"connection{n:04d}" + "x" * 60
        assert tokens(f"why {word}") == [word]  # the stemmer keeps a word it does not know
    after = faq._word_tokens.cache_info().currsize
    assert after == before
    assert tokens("why blocking") == ["block"] and faq._word_tokens.cache_info().currsize > 0


def test_a_long_question_is_cut_only_up_to_its_limit(knowledge: KnowledgeBase) -> None:
    ((pieces, factor, _),) = knowledge._letters("asyncio " * 10_000)
    assert len(set(pieces)) <= MAX_LETTERS_CHARS and factor > 0
    assert pieces == letter_pieces(("asyncio " * 10_000)[:MAX_LETTERS_CHARS])


def test_letters_sums_are_remembered_for_a_few_texts_and_change_nothing() -> None:
    # A follow-up's second search reuses what its words' pieces were worth to each entry; the
    # memory keeps the last few texts only, and a search gives what a fresh index gives.
    used, fresh = KnowledgeBase.load(), KnowledgeBase.load()
    for n in range(3 * faq._REMEMBERED):
        used.search(f"how do I cancel task number {n}", context="What is a task?")
        assert len(used._weighed) <= faq._REMEMBERED
    question, topic = "what if it never ends", "How does cancellation work?"
    used.search(question, limit=5, context=topic)  # remembered now
    assert used.search(question, limit=5, context=topic) == fresh.search(
        question, limit=5, context=topic
    )


def test_letters_rank_a_run_together_word_with_its_entry(knowledge: KnowledgeBase) -> None:
    # "eventloop" is no word BM25 knows, but its pieces are those of "event loop".
    asked = knowledge._letters("eventloop")
    likeness = {e.question: knowledge._likeness(asked, i) for i, e in enumerate(knowledge.entries)}
    assert max(likeness, key=likeness.__getitem__) == "What is the event loop?"


def test_held_is_the_most_words_that_one_phrasing_has(knowledge: KnowledgeBase) -> None:
    # _held counts with bit masks; here the count is made the plain way, one phrasing at a time.
    rng = random.Random(15)
    vocabulary = sorted({word for entry in knowledge.entries for word in tokens(entry.question)})
    for index, entry in enumerate(knowledge.entries):
        phrasings = [set(tokens(text)) for text in (entry.question, *entry.phrasings)]
        own = sorted(set().union(*phrasings))
        for _ in range(20):
            found = set(rng.sample(own, rng.randint(0, min(12, len(own)))))
            found |= set(rng.sample(vocabulary, rng.randint(0, 4)))
            expected = max(len(found & words) for words in phrasings)
            assert knowledge._held(index, found) == expected, (entry.question, found)


def test_a_quoted_error_is_found_in_a_message_whatever_its_case_and_apostrophes(
    knowledge: KnowledgeBase,
) -> None:
    handler = knowledge.quoting("TypeError: handler() Missing 1 required positional argument: path")
    assert handler is not None and "positional argument" in handler.question
    both = knowledge.quoting("store_failed and then address already in use, twice")
    assert both is not None and both.question == 'What does "address already in use" mean?'
    # A heading that quotes fewer than three words, and no identifier, is no error to find.
    assert knowledge.quoting("what does await do") is None
    one_word = KnowledgeBase.parse('## What does "await" do?\n\nIt waits.\n', source="x.md")
    assert one_word.quoting("await") is None


async def test_the_faq_brain_answers_a_quoted_error_with_full_confidence(
    knowledge: KnowledgeBase,
) -> None:
    match = FaqBrain(knowledge).best("future: <Task finished> Task exception was never retrieved")
    assert match is not None and match.confidence == 1.0
    assert match.entry.question == 'What does "Task exception was never retrieved" mean?'


def test_a_dotted_name_counts_whole(knowledge: KnowledgeBase) -> None:
    assert tokens("asyncio.Queue, socket.io, e.g. 3.12") == [
        "asyncio", "queue", "websocket", "io", "e", "g", "3", "12", "asyncio.queu", "socket.io"
    ]  # fmt: skip

    # A name the knowledge base has makes a match surer than its parts alone; a name none of
    # its entries has (asyncio.Event: "asyncio" and "event" are common words) makes it less sure.
    def sure(question: str) -> float:
        return knowledge.search(question)[0].confidence

    assert sure("asyncio.run fails in jupyter") > sure("asyncio run fails in jupyter")
    assert sure("asyncio.Event set and wait") < sure("asyncio event set and wait")


def test_word_set_is_the_set_of_tokens_remembered_for_short_texts_only() -> None:
    text = "Why does asyncio.run() fail in my notebook?"
    assert word_set(text) == frozenset(tokens(text))
    assert word_set(text) is word_set(text)  # remembered: split once
    # A client sending long new messages must not grow the server's memory.
    faq._remembered_words.cache_clear()
    for n in range(100):
        long = f"message {n} " + "asyncio " * 200
        assert word_set(long) == frozenset(tokens(long))
    assert faq._remembered_words.cache_info().currsize == 0


def test_letter_pieces_are_remembered_for_short_texts_only() -> None:
    faq._remembered_pieces.cache_clear()
    long = "event loop " * (MAX_LETTERS_CHARS // 10)
    assert letter_pieces(long) == letter_pieces("event loop")
    assert faq._remembered_pieces.cache_info().currsize == 1  # "event loop" only


# Made-up words of five letters or more, which no entry has (a paste, another language).
UNKNOWN = ["qwxzy", "plorbt", "zindrak", "vexmort", "quorbl", "snarfly", "glimbo", "throxen"]


def test_typos_are_guessed_among_a_few_unknown_words_not_among_many(
    knowledge: KnowledgeBase,
) -> None:
    assert faq.MAX_GUESSES == len(UNKNOWN)
    # "asyncioo" is one letter too many: guessed while the question has at most MAX_GUESSES
    # unknown words, itself included...
    few = knowledge.search("asyncioo " + " ".join(UNKNOWN[:-1]), limit=1)
    assert [match.entry.question for match in few] == ["What is asyncio?"]
    # ...and not in a message of more, where each guess would be a dozen look-ups for nothing.
    assert knowledge.search("asyncioo " + " ".join(UNKNOWN), limit=1) == []


def test_a_word_longer_than_any_indexed_word_is_never_cut_for_typos(
    knowledge: KnowledgeBase, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A typo is one letter away from an indexed word, so a word of a thousand letters is none:
    # cutting it into a thousand shorter words to look up would cost milliseconds.
    cut: list[int] = []
    deletions = faq._deletions
    monkeypatch.setattr(faq, "_deletions", lambda word: cut.append(len(word)) or deletions(word))
    found = knowledge.search("x" * 900 + " asyncioo", limit=1)
    assert [match.entry.question for match in found] == ["What is asyncio?"]
    longest = max(len(word) for word in knowledge._postings)
    assert cut and max(cut) <= longest + 1
