"""The default brain, ``assistant``: rules, the FAQ with follow-ups, "not sure", then ELIZA."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatbot.brains import faq
from chatbot.brains.assistant import (
    CLEAR_LEAD,
    NOT_SURE,
    OFF_FIELD_THRESHOLD,
    AssistantBrain,
    follow_up,
    in_domain,
    sentence_case,
)
from chatbot.brains.base import Conversation, reply_text
from chatbot.brains.evaluation import OFF_TOPIC, Question, evaluate, read_questions
from chatbot.brains.faq import MAX_QUESTION_CHARS, KnowledgeBase, focus
from chatbot.brains.rules import HELP_REPLY
from tests.test_faq import OFF_TOPIC as FAQ_OFF_TOPIC
from tests.test_faq import OFF_TOPIC_WITH_KNOWN_WORDS

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture(scope="module")
def brain() -> AssistantBrain:
    return AssistantBrain()


@pytest.fixture(scope="module")
def knowledge() -> KnowledgeBase:
    return KnowledgeBase.load()


async def test_a_question_gets_its_entry_and_becomes_the_topic(brain: AssistantBrain) -> None:
    conversation = Conversation()
    answer = brain.answer("what is backpressure", conversation)
    assert (answer.by, answer.topic) == ("faq", "What is backpressure?")
    assert conversation.state["assistant"]["topic"] == "What is backpressure?"
    json.dumps(conversation.state)  # sessions store it as JSON


# "I don't understand" asks for it another way: the same as "why?" (the entry's ### Why).
@pytest.mark.parametrize("message", ["why?", "I don't understand", "that makes no sense"])
async def test_why_is_answered_in_the_previous_topic(brain: AssistantBrain, message: str) -> None:
    conversation = Conversation()
    brain.answer("what is backpressure", conversation)
    answer = brain.answer(message, conversation)
    entry = brain.faq.knowledge.entry("What is backpressure?")
    assert entry is not None
    assert (answer.by, answer.topic, answer.text) == ("follow-up", entry.question, entry.why)
    # Without a topic, there is nothing to say again: ELIZA's.
    assert brain.answer(message, Conversation()).by == "eliza"


async def test_a_follow_up_that_leans_on_the_topic_is_searched_with_it(
    brain: AssistantBrain,
) -> None:
    conversation = Conversation()
    brain.answer("how do i add a timeout?", conversation)
    answer = brain.answer("and for several tasks at once?", conversation)
    assert answer.topic == "How do I put one deadline on several tasks?"
    # Its own words lead nowhere clearly ("cancel" and "timeout" both have entries): the topic's
    # words help the search.
    conversation = Conversation()
    brain.answer("how do i cancel a task", conversation)
    answer = brain.answer("and with a timeout?", conversation)
    assert answer.topic == "How do I add a timeout?"


async def test_one_leans_on_the_topic_when_it_stands_for_a_thing_not_when_it_counts(
    brain: AssistantBrain,
) -> None:
    # "one server" counts servers: the question is clear on its own, and the topic's words
    # must not pull it elsewhere (they did: "How do I run several server processes?").
    conversation = Conversation()
    brain.answer("maximum number of connections", conversation)
    answer = brain.answer("how far does one server scale", conversation)
    assert (answer.by, answer.topic) == ("faq", "How many clients can one server handle?")
    # "make one" after rooms is a room; alone, its words lead elsewhere.
    conversation = Conversation()
    brain.answer("what is a room", conversation)
    answer = brain.answer("how do I make one", conversation)
    assert (answer.by, answer.topic) == ("faq", "How do rooms work?")
    assert brain.answer("how do I make one", Conversation()).topic != "How do rooms work?"


async def test_the_topic_s_then_lines_answer_its_follow_ups_unless_the_message_is_clear(
    brain: AssistantBrain,
) -> None:
    blocking = brain.faq.knowledge.entry("What does blocking the event loop mean?")
    assert blocking is not None
    assert ("how do I fix it?", "How do I run blocking code without freezing the server?") in (
        blocking.then
    )
    for follow, topic in [
        ("how do i fix it", "How do I run blocking code without freezing the server?"),
        ("ok so how do i fix that??", "How do I run blocking code without freezing the server?"),
        # Clear on its own: its own words lead, and it leans on nothing.
        ("what is a websocket?", "What is a WebSocket?"),
    ]:
        conversation = Conversation()
        brain.answer("what does blocking the event loop mean", conversation)
        answer = brain.answer(follow, conversation)
        assert (answer.by, answer.topic) == ("faq", topic), follow


async def test_a_follow_up_that_says_it_stays_in_the_topic_unless_its_words_lead_elsewhere(
    brain: AssistantBrain,
) -> None:
    # Their own words match other entries ("change": how the package is made; "kept": sessions).
    for first, then, topic in [
        ("what is the rate limit", "can I change it?", "How does the rate limit work?"),
        ("what is the event log", "where is it kept?", "What is the event log?"),
        # "find" leads to the FAQ brain's entry on its own, not with the topic's words helping.
        (
            'what does "coroutine was never awaited" mean',
            "how do i find which line it was",
            'What does "coroutine was never awaited" mean?',
        ),
    ]:
        conversation = Conversation()
        brain.answer(first, conversation)
        assert brain.answer(then, conversation).topic == topic
    conversation = Conversation()
    brain.answer("what is a task", conversation)
    answer = brain.answer("what if it raises and nobody awaits it?", conversation)
    assert answer.topic == 'What does "Task exception was never retrieved" mean?'


async def test_a_question_that_shares_a_word_with_the_topic_is_of_the_field(
    brain: AssistantBrain,
) -> None:
    # "limits" is no word of the field on its own ("my life has no limit" is ELIZA's), but after
    # a question about the rate limit it is about the server.
    conversation = Conversation()
    brain.answer("what is the rate limit", conversation)
    answer = brain.answer("what other limits are there?", conversation)
    assert (answer.by, answer.topic) == ("faq", "What limits does the server enforce?")


# Statements after a topic, not questions. A feeling about "it" stays ELIZA's, whatever the
# topic. Trouble with it ("I tried it and nothing happened") is the workshop's: an entry, or "not
# sure". So is a statement with two words of the topic's phrasings ("raise" and "other" are in
# gather's); one shared word is not enough ("i like pizza" after rooms stays small talk). A
# judgment of the topic ("feels like overkill") gets the topic's reasons; "sounds good" and a
# judgment of something else ("my cat looks hungry") do not. A summary ("so it's like a waiter"),
# thanks and the next thing, the learner's own stack are the workshop's; "so tired today" is not.
# A source that says otherwise gets the reasons too; code "the same" as the answer's gets it again,
# and so does what the code gave ("it printed None"), unless a word is of something else ("cat").
# A word to the bot that asks nothing ("you seem nice") is small talk, whatever entry has "nice";
# "your server crashes..." is about the workshop's server. One the search cannot place but whose
# best match is the topic gets more of the topic ("follow-up").
WORKSHOP = {"faq", "follow-up", "not sure"}


@pytest.mark.parametrize(
    ("first", "then", "by"),
    [
        ("what is a coroutine", "I love it", {"eliza"}),
        ("what is a coroutine", "I tried it and it did nothing", WORKSHOP),
        ("what is a coroutine", "my friend tried it and got nothing", WORKSHOP),
        ("what is gather", "one of them raised and the others kept going", WORKSHOP),
        ("how do rooms work", "i like pizza", {"eliza"}),
        ("why store before ack", "feels like overkill for a chat app tbh", {"follow-up"}),
        ("what is the event loop", "that sounds really weird", {"follow-up"}),
        ("what is the event loop", "sounds good", {"eliza", "rules"}),
        ("how do rooms work", "my cat looks hungry", {"eliza"}),
        ("what is the event loop", "so basically its like a waiter serving many tables", {"faq"}),
        ("what is a coroutine", "ok thanks, and the await part", WORKSHOP),
        ("how does one server handle many clients at once?", "my company uses django", WORKSHOP),
        ("what is the event log?", "so tired today, slept 4 hours only", {"eliza"}),
        ("what is a coroutine", "so you are my friend now", {"eliza"}),
        ("how do i add a timeout", "my teacher said otherwise", {"follow-up"}),
        ("what is a coroutine", "my sister thinks otherwise about everything", {"eliza"}),
        ("why does asyncio.run() fail in jupyter", "my code looks exactly like that", {"faq"}),
        ("what is a coroutine", "and how is that different from a task", {"faq"}),
        ("how do i run several coroutines at the same time", "it printed None", WORKSHOP),
        ("how do i add a timeout", "my cat took my seat", {"eliza"}),
        ("what is the event loop", "you seem nice", {"eliza"}),
        ("what does await do?", "you explain well", {"eliza"}),
        ("what is a coroutine", "your server crashes when i send a big message", {"faq"}),
        ("what is a websocket", "i only know javascript", WORKSHOP),
        ("how do i run the workshop?", "my laptop fan is loud", {"eliza"}),
        # A statement that ends in a question; a request after a topic.
        (
            "what does create_task give me back",
            "so if i dont keep it in a variable is that bad",
            WORKSHOP,
        ),
        ("how do sessions and resume work?", "show the kill -9 demo again", WORKSHOP),
        ("what is a coroutine", "tell me a joke", {"eliza"}),
    ],
)
async def test_a_statement_after_a_topic_is_the_workshop_s_when_it_tells_of_the_topic(
    brain: AssistantBrain, first: str, then: str, by: set[str]
) -> None:
    conversation = Conversation()
    brain.answer(first, conversation)
    assert brain.answer(then, conversation).by in by


async def test_a_statement_of_the_field_whose_best_match_is_the_topic_gets_more_of_it(
    brain: AssistantBrain,
) -> None:
    conversation = Conversation()
    brain.answer("why is there a thread for the database in an async server", conversation)
    topic = brain.faq.knowledge.entry("Why does SQLite run in its own thread?")
    assert topic is not None
    message = "i always thought sqlite was fast enough to just call directly"
    answer = brain.answer(message, conversation)
    assert (answer.by, answer.topic) == ("follow-up", topic.question)
    # Its reasons, else its example, else its answer again (this entry has neither).
    assert not topic.why and not topic.example
    assert answer.text.startswith("That is all I know about") and topic.answer in answer.text


async def test_a_judgment_of_the_topic_gets_its_reasons(brain: AssistantBrain) -> None:
    conversation = Conversation()
    topic = brain.answer("what is backpressure", conversation).topic
    answer = brain.answer("seems complicated honestly", conversation)
    entry = brain.faq.knowledge.entry("What is backpressure?")
    assert topic == "What is backpressure?" and entry is not None and entry.why
    assert (answer.by, answer.topic, answer.text) == ("follow-up", topic, entry.why)


async def test_a_summary_of_the_topic_gets_the_topic_unless_it_names_another_entry(
    brain: AssistantBrain,
) -> None:
    conversation = Conversation()
    brain.answer("what is the event loop", conversation)
    summary = brain.answer("so it is a to-do list of callbacks", conversation)
    assert (summary.by, summary.topic) == ("faq", "What is the event loop?")
    elsewhere = brain.answer("so the fix is asyncio.to_thread for my blocking call", conversation)
    assert elsewhere.topic == "How do I run blocking code without freezing the server?"


async def test_a_pasted_error_that_a_heading_quotes_finds_that_entry(brain: AssistantBrain) -> None:
    # BM25 alone: the task's names and addresses are unknown words, and the brain is not sure.
    pasted = (
        "Task exception was never retrieved\nfuture: <Task finished name='Task-5' "
        "coro=<save_reply() done> exception=ConnectionError('db down')>"
    )
    answer = brain.answer(pasted, Conversation())
    assert (answer.by, answer.topic) == (
        "faq",
        'What does "Task exception was never retrieved" mean?',
    )


async def test_a_question_of_the_field_it_cannot_place_gets_not_sure(
    brain: AssistantBrain,
) -> None:
    answer = brain.answer("how do I run asyncio on a microcontroller with zxqv", Conversation())
    assert answer.by == "not sure"
    assert answer.text.startswith(NOT_SURE)


async def test_yes_after_not_sure_picks_the_first_topic_offered(brain: AssistantBrain) -> None:
    conversation = Conversation()
    unsure = brain.answer("asyncio zxqv frobnicate", conversation)
    assert unsure.by == "not sure" and unsure.offered
    picked = brain.answer("yes", conversation)
    assert (picked.by, picked.topic) == ("faq", unsure.offered[0])


@pytest.mark.parametrize(
    "text", ["hello", "thanks, bye", "ok thanks", "it works now, thanks", "bye for now"]
)
async def test_greetings_thanks_and_goodbyes_get_polite_replies(
    brain: AssistantBrain, text: str
) -> None:
    assert brain.answer(text, Conversation()).by == "rules"


async def test_feelings_go_to_eliza_in_sentence_case(brain: AssistantBrain) -> None:
    answer = brain.answer("My mother never listens to me", Conversation())
    assert answer.by == "eliza"
    assert answer.text == "Tell me more about your family"


# Feelings and small talk that share everyday words with the knowledge base ("stuck", "chat",
# "message", "limit", "lock", "queue", "job"): they are ELIZA's, never an entry's or "not sure".
FEELINGS = [
    "I feel stuck",
    "I'm stuck at home with my kids",
    "my boss blocks all my ideas",
    "I am sad about a chat with my friend",
    "I sent my sister a message and she never replied",
    "I need a break",
    "my life has no limit",
    "I feel like I'm in a queue for everything",
    "my husband wants to lock me out",
    "I hate waiting in line",
    "I feel frozen",
    "everything is slow today",
    "I am tired of my job",
    "I am so stressed about my exams",
    "my computer hates me",
    "my friend says I talk too much",
    "can you keep a secret",
    # A request out of the blue, with no entry clearly ahead, is small talk too.
    "give me a hug",
    "show me some love",
    "tell me a joke",
]


# Questions about the workshop with no word of the field: the closest topics, never ELIZA.
PLAIN_QUESTIONS = [
    "why does nothing happen when I press enter",
    "what happens if I send too much",
    "what happens when I press stop",
    "why can't my friends reach me",
    "is my data saved",
]


@pytest.mark.parametrize("message", PLAIN_QUESTIONS)
async def test_plain_questions_about_the_workshop_never_go_to_eliza(
    brain: AssistantBrain, message: str
) -> None:
    assert brain.answer(message, Conversation()).by in ("faq", "not sure")


MODULE_NOT_FOUND = 'What does "ModuleNotFoundError: No module named" mean?'


# Questions that each went to a confident wrong entry (session 18's probes), with their entries.
QUESTIONS_AND_ENTRIES = [
    # The course's own words, asked the way a learner asks what a word means: threads and
    # processes (notebooks 01, 03, 04, 08), futures (the store's thread, the checkers), the kernel.
    # Each went to an entry that only uses the word ("what is a thread": why SQLite has one).
    ("what is a thread", "What are threads and processes?"),
    ("what is a process", "What are threads and processes?"),
    ("what is the GIL", "What are threads and processes?"),
    ("what is a future", "What is a future?"),
    ("future vs task", "What is a future?"),
    ("what is a kernel", "What is the Jupyter kernel?"),
    ("what is jupyter", "What is the Jupyter kernel?"),
    ("what does restart kernel do", "What is the Jupyter kernel?"),
    ("what is a frame", "What is a WebSocket frame?"),
    ("what is an opcode", "What is a WebSocket frame?"),
    # Names in a room (notebook 05): "how do i change my name" got how the package is made.
    ("how do i change my name", "How do names work in a room?"),
    ("how do i set my name", "How do names work in a room?"),
    ("why am i called guest-3", "How do names work in a room?"),
    ("error bad_name", "How do names work in a room?"),
    # The stored messages (notebook 04): "how do i open the sqlite file" got the Redis store.
    ("how do i open the sqlite file", "Where are the messages stored?"),
    ("how do i read the database", "Where are the messages stored?"),
    ("which file has the chat history", "Where are the messages stored?"),
    # The first error on a fresh laptop: a package the kernel's Python does not have.
    ("ModuleNotFoundError: No module named 'websockets'", MODULE_NOT_FOUND),
    ("no module named chatbot", MODULE_NOT_FOUND),
    ("i installed websockets but jupyter says no module", MODULE_NOT_FOUND),
    # The workshop itself: "how long does the workshop take" got timeouts, "the original
    # notebook" the origin check ("original" stems to "origin").
    ("how long does the workshop take", "What does this workshop cover?"),
    ("can i skip notebook 4", "What does this workshop cover?"),
    ("how do i reset a notebook", "How do I get a notebook back as it was?"),
    ("how do i get the original notebook back", "How do I get a notebook back as it was?"),
    ("i broke my notebook how do i start over", "How do I get a notebook back as it was?"),
    ("can i use python 3.13", "How do I run the workshop?"),
]


@pytest.mark.parametrize(("message", "entry"), QUESTIONS_AND_ENTRIES)
async def test_questions_that_went_to_a_wrong_entry_get_theirs(
    brain: AssistantBrain, message: str, entry: str
) -> None:
    answer = brain.answer(message, Conversation())
    assert (answer.by, answer.topic) == ("faq", entry)


# Words of the field that no entry explains (the interrupt's signal, the checkers' daemon
# thread, the kit's speedups): "not sure", never ELIZA's "Why do you ask".
@pytest.mark.parametrize(
    "message",
    [
        "what is sigint",
        "what is a daemon thread",
        "what is a semaphore",
        "what is orjson",
        "what is picows",
        "what is a pytest fixture",
        "what is a deadlock",
        "what is a callback",
        "PermissionError: [Errno 13] Permission denied",
    ],
)
async def test_words_of_the_field_without_an_entry_never_go_to_eliza(
    brain: AssistantBrain, message: str
) -> None:
    assert brain.answer(message, Conversation()).by in ("faq", "not sure")


async def test_a_question_without_words_of_the_field_is_answered_when_one_entry_leads(
    brain: AssistantBrain,
) -> None:
    # No word of the field, a confidence under OFF_FIELD_THRESHOLD, but one entry far ahead.
    question = "how many messages per minute may I send"
    found = brain.faq.knowledge.search(question)
    assert not in_domain(question)
    assert brain.faq.threshold <= found[0].confidence < OFF_FIELD_THRESHOLD
    assert found[0].score >= CLEAR_LEAD * found[1].score
    answer = brain.answer(question, Conversation())
    assert (answer.by, answer.topic) == ("faq", "How does the rate limit work?")
    # A statement that shares one rare word with one entry ("today") asks nothing: not an entry.
    assert brain.answer("I am so happy today", Conversation()).by != "faq"
    # As confident, with two entries almost tied: the closest topics, not a guess.
    question = "what happens if my wifi drops"
    found = brain.faq.knowledge.search(question)
    assert found[0].confidence >= brain.faq.threshold
    assert found[0].score < CLEAR_LEAD * found[1].score
    assert brain.answer(question, Conversation()).by == "not sure"


@pytest.mark.parametrize("message", FEELINGS)
async def test_feelings_with_everyday_words_of_the_field_go_to_eliza(
    brain: AssistantBrain, message: str
) -> None:
    assert brain.answer(message, Conversation()).by == "eliza"


# Everyday words alone, out of a topic: small talk, although a phrasing of the FAQ has each word
# ("went for lunch and the chat disconnected": "when is lunch" matched the idle timeout's entry).
EVERYDAY = [
    "when is lunch",
    "whats for lunch",
    "I'm lost",
    "what's next",
    "i see",
    "say that again",
    "how old are you",
    "how is the weather",
    "where are the slides",
    "my code doesn't work",
    "it's broken",
    "how do i get a job",
    "is this used in production",
]


@pytest.mark.parametrize("message", EVERYDAY)
async def test_everyday_words_alone_are_small_talk_out_of_a_topic(
    brain: AssistantBrain, message: str
) -> None:
    assert brain.faq.knowledge.search(message)  # some phrasing has the word
    assert brain.answer(message, Conversation()).by == "eliza"


@pytest.mark.parametrize(
    "message", ["how does this work?", "what is this", "what now", "how do i use you"]
)
async def test_a_first_message_about_using_the_bot_gets_the_help(
    brain: AssistantBrain, message: str
) -> None:
    answer = brain.answer(message, Conversation())
    assert (answer.by, answer.text) == ("rules", HELP_REPLY)
    # After a topic, the same words are a follow-up: the topic's.
    conversation = Conversation()
    brain.answer("What is the event loop?", conversation)
    assert brain.answer(message, conversation).text != HELP_REPLY


async def test_everyday_words_with_a_word_of_the_field_or_after_a_topic_are_searched(
    brain: AssistantBrain,
) -> None:
    # "crash", "died" stand for "kill" (a synonym), which is the workshop's: not small talk.
    answer = brain.answer("what if i kill it", Conversation())
    assert (answer.by, answer.topic) == ("faq", "Is anything lost when the server is killed?")
    answer = brain.answer("what's next after the handshake", Conversation())
    assert (answer.by, answer.topic) != ("eliza", None)
    conversation = Conversation()
    brain.answer("What does blocking the event loop mean?", conversation)
    assert brain.answer("so what's next", conversation).by != "eliza"


@pytest.mark.parametrize("question", FAQ_OFF_TOPIC + OFF_TOPIC_WITH_KNOWN_WORDS)
async def test_off_topic_questions_never_get_an_entry(brain: AssistantBrain, question: str) -> None:
    assert brain.answer(question, Conversation()).by != "faq"


def test_follow_up_kinds() -> None:
    assert follow_up("why?") == "why"
    assert follow_up("show me an example please") == "example"
    assert follow_up("can you say that more simply") == "more"
    # Saying the answer did not land asks for it another way; a feeling alone does not.
    assert follow_up("i dont understand") == follow_up("hmm, still confused") == "more"
    assert follow_up("i feel so lost today") is None
    assert follow_up("why is my event loop blocked?") is None
    assert follow_up("hello") is None


def test_in_domain_knows_the_field_s_words() -> None:
    assert in_domain("how do i use trio instead of asyncio")
    assert in_domain("what is to_thread")
    assert in_domain("my p99 is 300 ms")
    assert not in_domain("my sister makes fun of me")
    # A pasted exception is the field's, whatever its name.
    assert in_domain("PermissionError: [Errno 13] Permission denied")
    assert in_domain("BrokenPipeError")
    assert not in_domain("my terror of spiders")


def test_sentence_case_keeps_the_user_s_spelling() -> None:
    assert sentence_case("WHY DO YOU SAY YOUR PYTHON IS SLOW", "my Python is slow") == (
        "Why do you say your Python is slow"
    )
    assert sentence_case("I SEE. WHAT ELSE", "hmm") == "I see. What else"
    # "I" and "I'm" in capitals wherever they are; a word that starts with a digit is no word.
    assert sentence_case("I AM SURE I'M RIGHT? 2ND TRY", "i'm") == "I am sure I'm right? 2nd try"
    # The user's own spelling of every word, CamelCase included; capitals alone are not spelling.
    assert sentence_case("YOUR WEBSOCKETS AND YOUR API", "my WebSockets and my API") == (
        "Your WebSockets and your api"
    )


def test_focus_keeps_the_last_error_of_a_traceback() -> None:
    pasted = (
        "Traceback (most recent call last):\n"
        '  File "x.py", line 3, in <module>\n'
        "    asyncio.run(main())\n"
        "RuntimeError: asyncio.run() cannot be called from a running event loop"
    )
    assert focus(pasted) == (
        "RuntimeError: asyncio.run() cannot be called from a running event loop"
    )
    assert focus("what is a task") == "what is a task"


@settings(max_examples=400, derandomize=True, database=None, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                'File "x.py", line 3, in f',
                "RuntimeError: no running event loop",
                "asyncio.exceptions.CancelledError",
                "x.KeyError:",
                "aError not one",
                "websockets.exceptions.ConnectionClosedOK: sent 1000 (OK)",
                "SystemExit",
                "    await ws.send(reply)",
                "",
                " ",
                "\n",
                "x" * 150,
                "Traceback (most recent call last):",
            ]
        ),
        max_size=40,
    ),
    st.sampled_from(["\n", " ", ""]),
)
def test_focus_reads_the_last_lines_first_and_finds_what_the_whole_tail_would(
    parts: list[str], separator: str
) -> None:
    # Before, focus searched its whole tail of 2,000 characters at once: the same error must come
    # out, now that it reads the last lines first.
    message = separator.join(parts)
    expected = message
    if any(marker in message for marker in faq._TRACEBACK):
        tail = message[-2000:]
        errors = list(faq._ERROR.finditer(tail))
        expected = tail[errors[-1].start() :].strip() if errors else message
    assert focus(message) == expected


async def test_a_pasted_traceback_finds_its_entry(brain: AssistantBrain) -> None:
    pasted = (
        'Traceback (most recent call last):\n  File "bot.py", line 9, in <module>\n'
        "RuntimeError: This event loop is already running"
    )
    answer = brain.answer(pasted, Conversation())
    assert answer.topic == 'What does "This event loop is already running" mean?'


async def test_the_assistant_streams_what_it_decided(brain: AssistantBrain) -> None:
    expected = brain.answer("what is a coroutine", Conversation()).text
    assert await reply_text(brain, "what is a coroutine", Conversation()) == expected


# The evaluation


@pytest.mark.parametrize(
    "name",
    ["dev", "followups_dev"]
    + [f"{kind}heldout{part}" for kind in ("", "followups_") for part in ("", "2", "3")],
)
def test_every_evaluation_file_names_existing_entries(knowledge: KnowledgeBase, name: str) -> None:
    questions = read_questions(BENCHMARKS / f"eval_{name}.txt", knowledge)
    assert questions
    if name.startswith("followups"):
        assert all(question.before for question in questions)


def test_there_are_at_least_150_questions(knowledge: KnowledgeBase) -> None:
    count = sum(
        len(read_questions(BENCHMARKS / f"eval_{name}.txt", knowledge))
        for name in ("dev", "heldout")
    )
    assert count >= 150


def test_a_line_without_an_arrow_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "q.txt"
    path.write_text("# comment\nwhat is asyncio\n")
    with pytest.raises(ValueError, match="line 2: expected 'question => entry'"):
        read_questions(path)


async def test_evaluate_scores_entries_not_sure_and_off_topic(
    brain: AssistantBrain, knowledge: KnowledgeBase
) -> None:
    questions = [
        Question("what is backpressure", "What is backpressure?"),
        Question("my mother never listens to me", OFF_TOPIC),
        Question("what is backpressure", "What is a task?"),
    ]
    score = await evaluate(brain, questions, knowledge)
    assert (score.total, score.top1, score.eliza_in_domain) == (3, 2, 0)
    assert [miss.got for miss in score.misses] == ["What is backpressure?"]


def test_eval_script_smoke_run(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # benchmarks/ is a folder of scripts, not a package: load the script from its file.
    spec = importlib.util.spec_from_file_location("benchmarks_eval", BENCHMARKS / "eval.py")
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, script)
    spec.loader.exec_module(script)
    assert script.main(["--smoke"]) == 0
    printed = capsys.readouterr().out
    assert "assistant  heldout" in printed
    assert "top-1" in printed


def test_a_long_message_is_read_up_to_max_question_chars(brain: AssistantBrain) -> None:
    # What a reply costs must not grow with what a client sends (up to 4,000 characters): the
    # assistant reads the first MAX_QUESTION_CHARS, and a question after them goes unread.
    filler = "ok " * (MAX_QUESTION_CHARS // 3 + 10)
    first = brain.answer("what is the event loop? " + filler, Conversation())
    assert (first.by, first.topic) == ("faq", "What is the event loop?")
    # Nothing of the field in what is read: small talk, not even "not sure" about the loop.
    last = brain.answer(filler + "what is the event loop?", Conversation())
    assert (last.by, last.topic) == ("eliza", None)
