"""The rules brain: ordered patterns, named captures, templates in rotation, a fallback."""

from __future__ import annotations

from datetime import datetime

import pytest

from chatbot import Conversation, RulesBrain
from chatbot.brains.base import NoAnswer, reply_text
from chatbot.brains.rules import DEFAULT_FALLBACK, Rule

NOON = datetime(2026, 11, 24, 12, 5)


async def ask(brain: RulesBrain, conversation: Conversation, text: str) -> str:
    return await reply_text(brain, text, conversation)


GREETING = "Hello! I'm the workshop's chatbot. Ask me about asyncio or WebSockets, or type 'help'."
HELP = (
    "I can answer questions about asyncio, WebSockets and this workshop, tell you the time or "
    "the date, and chat a little. Try 'what is an event loop?'"
)
IDENTITY = (
    "I'm a chatbot built in the 'Real-time chatbots with asyncio' workshop: a WebSocket server "
    "in Python, answering many people at once."
)


@pytest.mark.parametrize(
    ("message", "reply"),
    [
        ("Hello!", GREETING),
        ("what time is it?", "It is 12:05."),
        ("What's the date", "Today is Tuesday, 24 November 2026."),
        ("help", HELP),
        ("Thanks a lot!", "You're welcome!"),
        ("bye", "Goodbye! Come back any time."),
        ("How are you?", "Running smoothly in my event loop, thanks. How are you?"),
        ("who are you", IDENTITY),
        ("Tell me about quantum gravity", DEFAULT_FALLBACK),
    ],
)
async def test_each_rule_answers_its_messages(message: str, reply: str) -> None:
    assert await ask(RulesBrain(clock=lambda: NOON), Conversation(), message) == reply


PRESENT = (
    "I'm here, and your messages reach me. Ask me about asyncio or WebSockets, or type 'help'."
)


@pytest.mark.parametrize(
    ("message", "reply"),
    [
        ("hi bot", GREETING),
        ("Hello chatbot!", GREETING),
        ("hey everyone", GREETING),
        ("yo", GREETING),
        ("what's up?", GREETING),
        ("Bonjour !", GREETING),
        ("hola", GREETING),
        ("merci beaucoup", "You're welcome!"),
        ("danke", "You're welcome!"),
        ("what do you know?", HELP),
        ("what do you know about", HELP),
        ("tell me what you know", HELP),
        ("who made you?", IDENTITY),
        ("are you an AI?", IDENTITY),
        ("are you chatgpt", IDENTITY),
        ("are you human", IDENTITY),
        ("test", PRESENT),
        ("testing 1 2 3", PRESENT),
        ("is this thing on?", PRESENT),
        ("are you there?", PRESENT),
        ("can you hear me", PRESENT),
        ("anyone there?", PRESENT),
        ("what model are you?", IDENTITY),
        ("do you use ChatGPT", IDENTITY),
        ("it works!", "Well done!"),
        ("that worked", "Well done!"),
        ("done", "Well done!"),
        ("fixed it!", "Well done!"),
        ("good bot", "Thank you!"),
        ("nice one!", "Thank you!"),
        ("ok got it, you are a good bot", "Thank you!"),
        ("you're a good bot, i like you", "Thank you!"),
        ("wow, you are smart", "Thank you!"),
        ("well done", "Thank you!"),
        ("good night everyone", "Goodbye! Come back any time."),
    ],
)
async def test_what_a_room_types_in_its_first_minute_gets_a_polite_reply(
    message: str, reply: str
) -> None:
    assert await ask(RulesBrain(), Conversation(), message) == reply


@pytest.mark.parametrize(
    "message",
    [
        "testing async code",
        "how do I test a websocket server",
        "test my server",
        "who made asyncio",
        "are you able to explain tasks?",
        "what do you know about asyncio",
        "what's up with my server",
        "hi, how do I cancel a task?",
        "good morning, what is a coroutine",
        "done with the exercise, what next?",
        "you are stupid",  # ELIZA's
        "good",  # after "how are you?", an answer, not praise
        "it works but why",
        "what is this",  # after a topic, a question about it: not the bot's identity
        "how does this work",
    ],
)
async def test_questions_that_start_like_small_talk_are_left_to_other_brains(message: str) -> None:
    with pytest.raises(NoAnswer):
        await ask(RulesBrain(fallback=None), Conversation(), message)


async def test_one_search_of_every_pattern_gives_the_same_replies_as_each_pattern_in_turn() -> None:
    joined = RulesBrain(fallback=None, clock=lambda: NOON)
    each = RulesBrain(fallback=None, clock=lambda: NOON)
    assert joined._any is not None
    each._any = None  # the rules one by one, as without the joined expression
    messages = ["hi bot", "my name is Ada", "what's my name?", "test", "it works!", "good bot"]
    messages += [
        "thanks, bye!",
        "what time is it?",
        "what is backpressure",
        "hello, is it blocked?",
    ]
    one, other = Conversation(), Conversation()
    for message in messages:
        assert joined.reply(message, one) == each.reply(message, other), message
    assert one.state == other.state


async def test_rules_that_cannot_be_joined_in_one_expression_still_answer() -> None:
    doubled = RulesBrain([Rule("double", r"\b(\w+) \1\b", ("Said twice.",))], fallback=None)
    assert doubled._any is None  # \1 would point at another rule's group
    assert await ask(doubled, Conversation(), "bye bye") == "Said twice."
    named = RulesBrain(
        [Rule("a", r"^x (?P<w>\w+)", ("a {w}",)), Rule("b", r"^y (?P<w>\w+)", ("b {w}",))]
    )
    assert named._any is None  # one group name in two rules
    assert await ask(named, Conversation(), "y z") == "b z"
    assert await ask(named, Conversation(), "w z") == DEFAULT_FALLBACK


async def test_replies_rotate_per_conversation() -> None:
    brain, conversation = RulesBrain(), Conversation()
    replies = [await ask(brain, conversation, "thanks") for _ in range(4)]
    assert replies == ["You're welcome!", "Any time.", "Glad to help.", "You're welcome!"]
    assert await ask(brain, Conversation(), "thanks") == "You're welcome!"


async def test_a_capture_is_remembered_for_later_replies() -> None:
    brain, conversation = RulesBrain(), Conversation()
    assert await ask(brain, conversation, "what is my name?") == DEFAULT_FALLBACK
    assert await ask(brain, conversation, "My name is Ada") == "Nice to meet you, Ada!"
    assert await ask(brain, conversation, "What's my name?") == "Your name is Ada."
    assert conversation.state["rules"]["memory"] == {"user_name": "Ada"}


async def test_long_messages_are_not_mistaken_for_small_talk() -> None:
    brain = RulesBrain(fallback=None)
    with pytest.raises(NoAnswer):
        await ask(brain, Conversation(), "thanks, but how do I cancel a task?")


async def test_custom_rules_in_order() -> None:
    rules = [
        Rule("a", r"\bpython\b", ("Python {word}!",)),
        Rule("b", r"(?P<word>\w+)$", ("{word}",)),
    ]
    brain = RulesBrain(rules, fallback="?")
    assert await ask(brain, Conversation(), "I like python") == "python"  # no {word}: skipped
    with pytest.raises(ValueError, match=r"^rule 'empty' needs at least one reply$"):
        Rule("empty", "x", ())
