"""benchmarks/brains.py: every shipped brain is measured over the shipped knowledge base.

Figures are measured, never asserted: no test here compares a time with a number.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from chatbot import Conversation, RulesBrain
from chatbot.brains.base import NoAnswer, load_brain, reply_text
from chatbot.brains.faq import KnowledgeBase
from chatbot.brains.rules import DEFAULT_RULES

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "brains.py"
SMOKE_TIMEOUT = 120  # seconds; the smoke run takes about three
SHIPPED = ["echo", "rules", "eliza", "faq", "assistant"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=SMOKE_TIMEOUT,
        cwd=ROOT,
        check=False,
    )


@pytest.fixture(scope="module")
def benchmark(monkeypatch_module: pytest.MonkeyPatch) -> ModuleType:
    # benchmarks/ is a folder of scripts, not a package: load the script from its file.
    monkeypatch_module.syspath_prepend(str(SCRIPT.parent))
    spec = importlib.util.spec_from_file_location("benchmarks_brains", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch_module.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def monkeypatch_module() -> Any:
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("brains")
    result = run("--smoke", "--out", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    return {"stdout": result.stdout, "report": json.loads((out / "brains-smoke.json").read_text())}


def test_corpus_asks_every_faq_question_and_phrasing(benchmark: ModuleType) -> None:
    knowledge = KnowledgeBase.load()
    corpus = benchmark.corpus(knowledge)
    for entry in knowledge.entries:
        assert entry.question in corpus["faq"]
        assert set(entry.phrasings) <= set(corpus["faq"])
    assert len(corpus["faq"]) == sum(1 + len(entry.phrasings) for entry in knowledge.entries)
    assert corpus["cacm"][0] == "Men are all alike."
    assert set(corpus) == {"faq", "cacm", "rules", "chat"}


async def test_corpus_triggers_every_default_rule(benchmark: ModuleType) -> None:
    # Replayed as brains.py replays it: one conversation ("what's my name?" after the name).
    brain, conversation = RulesBrain(fallback=None), Conversation()
    for message in benchmark.RULE_TRIGGERS:
        with contextlib.suppress(NoAnswer):  # the near misses fall through, as they must
            await reply_text(brain, message, conversation)
    assert set(conversation.state["rules"]["counts"]) == {rule.name for rule in DEFAULT_RULES}


def test_smoke_measures_every_shipped_brain_but_llm(smoke: dict[str, Any]) -> None:
    report = smoke["report"]
    assert list(report["brains"]) == SHIPPED
    corpora = report["corpora"]
    for name, figures in report["brains"].items():
        assert figures["replies"] > 0, name
        assert figures["replies"] == sum(c["replies"] for c in figures["corpora"].values())
        assert set(figures["corpora"]) == set(corpora)
        assert 0 < figures["median_us"] <= figures["p99_us"] <= figures["max_us"], name
        # Each reply's first chunk comes before its end.
        assert figures["first_chunk"]["median_us"] <= figures["median_us"], name
        assert len(figures["slowest"]) == 5
    for name in SHIPPED:
        assert f"\n{name} " in smoke["stdout"]
    # How fast the machine was, so that figures of different days can be compared.
    speed = report["machine"]["sum_range_1000_us"]
    assert speed > 0
    assert f"sum(range(1000)) in {speed} µs" in smoke["stdout"]
    # And how much it spread a fixed piece of work: a p99 is never under its median.
    jitter = report["machine"]["fixed_work_p99_over_median"]
    assert jitter >= 1.0
    assert f"has a p99 {jitter}x its median" in smoke["stdout"]
    # 300 replies replay no message three times: no per-message figure, and the table says so.
    assert all(figures["per_message_p99_us"] is None for figures in report["brains"].values())


async def test_per_message_p99_is_the_p99_of_each_message_s_median(benchmark: ModuleType) -> None:
    corpora = {"chat": ["hello", "what is a coroutine", "I feel stuck"]}
    figures = await benchmark.measure(load_brain("assistant"), corpora, replies=30, seconds=30)
    assert figures["replies"] == 30  # each message answered ten times
    # The costliest message's median: no more than its slowest reply, no less than the fastest.
    assert 0 < figures["per_message_p99_us"] <= figures["max_us"]
    assert figures["per_message_p99_us"] >= figures["slowest"][-1]["median_us"]


def test_long_messages_are_as_long_as_the_server_accepts(benchmark: ModuleType) -> None:
    from chatbot.server.limits import Limits

    (messages,) = benchmark.long_messages().values()
    longest = Limits().max_message_chars
    shapes = messages[1::2]  # each after a question of the knowledge base
    assert len(shapes) >= 8 and len(set(shapes)) == len(shapes)
    assert all(longest - 40 <= len(shape) <= longest + 40 for shape in shapes)
    assert benchmark.long_messages() == benchmark.long_messages()  # the same on every run


def test_long_smoke_run_measures_only_the_long_messages(tmp_path: Path) -> None:
    result = run("--long", "--smoke", "--brains", "assistant", "--out", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "brains-long-smoke.json").read_text())
    assert list(report["corpora"]) == ["long"]
    assert report["brains"]["assistant"]["replies"] > 0
    assert "\nassistant " in result.stdout


def test_llm_is_refused_with_the_reason() -> None:
    result = run("--brains", "llm", "--smoke")
    assert result.returncode == 2
    assert result.stderr == "error: llm needs an HTTP endpoint; it is not measured here\n"
