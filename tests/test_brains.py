"""The response-generation interface: adapters, streaming, stop, chains, and the loop kept free."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator, Iterator

import pytest

from chatbot import Brain, ChatbotError, Conversation, as_brain, load_brain, serve
from chatbot.brains.base import (
    NO_ANSWER,
    BrainError,
    ChainBrain,
    EchoBrain,
    FunctionBrain,
    NoAnswer,
    reply_text,
    shutdown_process_pool,
)
from tests.helpers import TurnCounter, chat, client, pid_reply


async def chunks_of(
    brain: Brain, message: str, conversation: Conversation | None = None
) -> list[str]:
    return [chunk async for chunk in brain.stream(message, conversation or Conversation())]


async def test_plain_function_plugs_in_as_it_is_and_runs_off_the_loop() -> None:
    loop_thread = threading.get_ident()
    seen: list[int] = []

    def generate_response(message: str) -> str:
        seen.append(threading.get_ident())
        return message[::-1]

    assert await chunks_of(as_brain(generate_response), "abc") == ["cba"]
    assert seen and seen[0] != loop_thread
    assert as_brain(generate_response).name == "generate_response"


async def test_coroutine_async_generator_and_generator_functions_plug_in() -> None:
    async def coroutine(message: str) -> str:
        await asyncio.sleep(0)
        return message.upper()

    async def async_generator(message: str) -> AsyncIterator[str]:
        for word in message.split():
            yield word + " "

    def generator(message: str) -> Iterator[str]:
        yield from message

    assert await chunks_of(as_brain(coroutine), "hi") == ["HI"]
    assert await chunks_of(as_brain(async_generator), "a b c") == ["a ", "b ", "c "]
    assert await chunks_of(as_brain(generator), "xyz") == ["x", "y", "z"]


async def test_two_argument_functions_get_the_conversation() -> None:
    def count(message: str, conversation: Conversation) -> str:
        return f"{message} #{len(conversation.turns) // 2 + 1}"

    async with serve(count, port=0) as server, client(server.url) as ws:
        assert [await chat(ws, "hi") for _ in range(3)] == ["hi #1", "hi #2", "hi #3"]
        async with client(server.url) as other:  # another connection, another conversation
            assert await chat(other, "hi") == "hi #1"


def test_bad_functions_are_refused_with_a_clear_message() -> None:
    def needs_three(a: str, b: str, c: str) -> str:
        return a

    with pytest.raises(TypeError) as caught:
        as_brain(needs_three)
    assert str(caught.value) == (
        "a brain function must accept (message) or (message, conversation), but "
        "'needs_three' has the signature (a: 'str', b: 'str', c: 'str') -> 'str'"
    )  # (annotations are strings here: this module uses `from __future__ import annotations`)
    with pytest.raises(
        TypeError, match=r"^got the class EchoBrain; pass an instance: EchoBrain\(\)$"
    ):
        as_brain(EchoBrain)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^expected a Brain, or a function taking"):
        as_brain(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^offload must be 'inline', 'thread' or 'process'"):
        FunctionBrain(str.upper, offload="gpu")  # type: ignore[arg-type]


async def test_a_brain_returning_no_string_is_an_error() -> None:
    with pytest.raises(TypeError, match=r"^brain '<lambda>' must return str, got int: 42$"):
        await chunks_of(as_brain(lambda message: 42), "hi")


async def test_reply_text_joins_the_stream() -> None:
    async def words(message: str) -> AsyncIterator[str]:
        for word in ["one ", "two ", "three"]:
            yield word

    assert await reply_text(as_brain(words), "count", Conversation()) == "one two three"


async def test_stop_cancels_a_streaming_reply_and_the_brain_releases_what_it_holds() -> None:
    released = asyncio.Event()
    three = asyncio.Event()
    received: list[str] = []

    class Slow(Brain):
        name = "slow"

        async def stream(self, message: str, conversation: Conversation) -> AsyncIterator[str]:
            try:
                for n in range(1000):
                    yield f"{n} "
                    await asyncio.sleep(0.01)
            finally:
                released.set()

    async def consume() -> None:
        async for chunk in Slow().stream("count", Conversation()):
            received.append(chunk)
            if len(received) == 3:
                three.set()

    task = asyncio.create_task(consume())
    await three.wait()
    task.cancel()  # what a Stop does
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.wait_for(released.wait(), 5)
    assert 3 <= len(received) < 1000


async def test_stopping_a_generator_in_a_thread_closes_it_after_its_current_step() -> None:
    closed = threading.Event()
    step = threading.Event()

    def numbers(message: str) -> Iterator[str]:
        try:
            for n in range(1000):
                step.wait(5)  # blocks its thread, never the loop
                yield str(n)
        finally:
            closed.set()

    stream = as_brain(numbers).stream("go", Conversation())
    step.set()
    assert await anext(stream) == "0"
    await stream.aclose()  # type: ignore[attr-defined]
    assert await asyncio.to_thread(closed.wait, 5)


async def test_a_blocking_brain_does_not_delay_another_clients_reply() -> None:
    # The slow brain blocks (a sync wait, like a slow computation or a blocking call) until the
    # other client got its reply. Run on the loop, that would deadlock; in a thread it cannot.
    other_replied = threading.Event()

    def brain(message: str) -> str:
        if message == "slow":
            if not other_replied.wait(timeout=10):
                return "slow, and the other client was stuck"
            return "slow, and the other client was served meanwhile"
        return f"fast {message}"

    async with serve(brain, port=0) as server, client(server.url) as a, client(server.url) as b:
        await a.send("slow")
        assert await chat(b, "hello") == "fast hello"
        other_replied.set()
        assert await a.recv() == "slow, and the other client was served meanwhile"


async def test_process_offload_runs_in_another_process() -> None:
    brain = FunctionBrain(pid_reply, offload="process")
    try:
        reply = await reply_text(brain, "hi", Conversation())
    finally:
        await asyncio.to_thread(shutdown_process_pool)
    pid, text = reply.split(" ", 1)
    assert text == "hi" and int(pid) != os.getpid()


async def test_process_offload_refuses_a_conversation_parameter() -> None:
    def remembers(message: str, conversation: Conversation) -> str:
        return message

    with pytest.raises(TypeError, match=r"offload='process' passes \(message\) only"):
        await chunks_of(FunctionBrain(remembers, offload="process"), "hi")


async def test_messages_sent_during_a_reply_are_answered_in_order() -> None:
    # The documented behaviour for plain-text clients: one message at a time, in order.
    async def slow_echo(message: str) -> str:
        await asyncio.sleep(0.05 if message == "first" else 0)
        return message

    async with serve(slow_echo, port=0) as server, client(server.url) as ws:
        for text in ["first", "second", "third"]:
            await ws.send(text)
        assert [await ws.recv() for _ in range(3)] == ["first", "second", "third"]


class Decline(Brain):
    name = "decline"

    def __init__(self) -> None:
        self.closed = False

    async def stream(self, message: str, conversation: Conversation) -> AsyncIterator[str]:
        try:
            raise NoAnswer("not mine")
            yield ""  # an async generator, that never yields
        finally:
            self.closed = True


async def test_chain_hands_over_on_no_answer_and_streams_the_first_answer() -> None:
    decline = Decline()

    async def words(message: str) -> AsyncIterator[str]:
        yield "a "
        yield "b"

    chain = ChainBrain(decline, words, EchoBrain())
    assert await chunks_of(chain, "hi") == ["a ", "b"]
    assert decline.closed
    with pytest.raises(NoAnswer, match=r"^none of \['decline', 'decline'\] had an answer$"):
        await chunks_of(ChainBrain(Decline(), Decline()), "hi")


async def test_server_answers_no_answer_and_brain_errors_in_words_the_user_can_read() -> None:
    def brain(message: str) -> str:
        if message == "down":
            raise BrainError("The language model is not reachable right now.")
        raise NoAnswer("nothing")

    async with serve(brain, port=0) as server, client(server.url) as ws:
        assert await chat(ws, "down") == "The language model is not reachable right now."
        assert await chat(ws, "anything") == NO_ANSWER == "I don't know how to answer that yet."


def test_load_brain_by_name_or_module_attribute() -> None:
    assert isinstance(load_brain("echo"), EchoBrain)
    assert load_brain("tests.helpers:pid_reply").name == "pid_reply"  # a function, wrapped
    assert isinstance(load_brain("chatbot.brains.base:EchoBrain"), EchoBrain)  # a class, created
    with pytest.raises(ChatbotError) as caught:
        load_brain("oracle")
    assert str(caught.value) == (
        "unknown brain 'oracle': expected one of echo, rules, eliza, faq, llm, assistant, "
        "or 'module:attribute' naming your own"
    )
    with pytest.raises(ChatbotError, match=r"^cannot load brain 'nowhere:x' from 'nowhere:x': "):
        load_brain("nowhere:x")


def test_each_brain_says_how_many_turns_it_reads() -> None:
    from chatbot.brains.llm import LlmBrain

    def alone(message: str) -> str:
        return message

    def with_turns(message: str, conversation: Conversation) -> str:
        return message

    assert [load_brain(name).history for name in ("echo", "rules", "eliza", "faq")] == [0] * 4
    assert load_brain("assistant").history == 0
    assert LlmBrain.history is None  # it sends the conversation to the model
    assert (as_brain(alone).history, as_brain(with_turns).history) == (0, None)
    assert ChainBrain(alone, load_brain("eliza")).history == 0
    assert ChainBrain(alone, with_turns).history is None
    assert ChainBrain(alone, TurnCounter(3), TurnCounter(5)).history == 5


@pytest.mark.parametrize(
    ("history", "seen"), [(0, "0 0 0 0"), (2, "0 2 2 2"), (None, "0 2 4 6"), (300, "0 2 4 6")]
)
async def test_a_plain_text_server_keeps_only_the_turns_its_brain_reads(
    history: int | None, seen: str
) -> None:
    async with serve(TurnCounter(history), port=0) as server, client(server.url) as ws:
        assert " ".join([await chat(ws, "hi") for _ in range(4)]) == seen
