"""The benchmarks' smoke mode, as CI runs it: it completes, every server answers, nothing fails.

Figures are measured, never asserted: no test here compares a rate or a latency with a number.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "benchmarks"
SMOKE_TIMEOUT = 180  # seconds; the smoke run takes about ten on a busy two-core machine
SERVERS = ["echo", "seed", "chatbot-text", "chatbot-json", "assistant-json"]
MEASURED = (
    "rate", "p50_us", "p95_us", "p99_us", "server_cpu_percent", "server_loop_cpu_percent",
    "server_rss_bytes", "loadgen_cpu_percent", "bottleneck", "histogram",
)  # fmt: skip


def _load(name: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    # benchmarks/ is a folder of scripts, not a package: load one module from its file (its
    # siblings import each other by name, as the scripts do).
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location(f"benchmarks_{name}", BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Run ``python benchmarks/run.py --smoke`` once; return its output and its JSON report."""
    out = tmp_path_factory.mktemp("benchmarks")
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "run.py"), "--smoke", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=SMOKE_TIMEOUT,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, f"the smoke run failed:\n{result.stdout}\n{result.stderr}"
    return {
        "stdout": result.stdout,
        "stderr": result.stderr,
        "report": json.loads((out / "smoke.json").read_text()),
        "png": out / "smoke.png",
    }


def test_smoke_run_prints_the_table_and_draws_the_progress_bar(smoke: dict[str, Any]) -> None:
    assert "x echo (min-max)" in smoke["stdout"]
    assert "round trips" in smoke["stderr"]  # the progress bar
    for name in SERVERS:
        assert f" {name} " in smoke["stdout"]


def test_smoke_run_writes_a_png_plot(smoke: dict[str, Any]) -> None:
    assert smoke["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_every_server_answered_every_client_without_errors(smoke: dict[str, Any]) -> None:
    measurements = smoke["report"]["measurements"]
    assert sorted(m["server"] for m in measurements) == sorted(SERVERS)
    for m in measurements:
        assert "failed" not in m, m
        assert m["server_alive"], m
        assert m["connected"] == m["clients"], m
        assert m["round_trips"] > 0, m
        assert m["errors"] == 0, m["error_kinds"]
        assert m["error_kinds"] == {}


def test_report_has_the_documented_structure(smoke: dict[str, Any]) -> None:
    report = smoke["report"]
    assert report["schema"] == 1
    assert (
        report["command"]
        == "python benchmarks/run.py --smoke --out " + report["command"].split("--out ")[1]
    )
    assert report["baseline"] == "echo"
    assert report["settings"]["smoke"] is True
    assert [s["name"] for s in report["servers"]] == SERVERS
    assert {"python", "websockets", "cpu_count"} <= report["machine"].keys()
    for m in report["measurements"]:
        for key in MEASURED:
            assert m[key] is not None, key
        assert m["p50_us"] <= m["p95_us"] <= m["p99_us"] <= m["max_us"]
        assert m["server_rss_bytes"] > 0
    for entry in report["summary"]:
        assert entry["rounds"] == 1
        assert {"median", "min", "max"} == entry["rate"].keys() == entry["rate_ratio"].keys()
    echo = next(e for e in report["summary"] if e["server"] == "echo")
    assert echo["rate_ratio"]["median"] == 1.0


def test_histogram_percentiles_are_within_half_a_percent_and_merge(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    histogram = _load("histogram", monkeypatch).LatencyHistogram
    first, second = histogram(), histogram()
    for value in range(1, 50_001):
        (first if value % 2 else second).record(value)
    first.merge(histogram.from_dict(json.loads(json.dumps(second.to_dict()))))
    assert first.total == 50_000
    assert (first.min, first.max) == (1, 50_000)
    for percent in (50, 95, 99):
        assert first.percentile(percent) == pytest.approx(500 * percent, rel=0.005)
    assert len(first.counts) < 2_000


def test_load_spec_refuses_addresses_other_than_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    load_spec = _load("loadgen", monkeypatch).LoadSpec
    message = "the load generator only talks to loopback; got 'ws://example.com/'"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        load_spec("ws://example.com/", clients=1)


def test_an_earlier_report_can_be_summarised_again_without_measuring(
    smoke: dict[str, Any], tmp_path: Path
) -> None:
    copy = tmp_path / "again.json"
    copy.write_text(json.dumps(smoke["report"]))
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "run.py"), "--from-json", str(copy), "--no-plot"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    again = json.loads(copy.read_text())
    assert again["measurements"] == smoke["report"]["measurements"]
    assert again["summary"] == smoke["report"]["summary"]


def test_a_py_spy_profile_is_summarised_per_thread_by_self_and_total_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # py-spy's raw format, as `py-spy record -f raw --threads` writes it (CI has no py-spy: the
    # summary is tested on stacks of that shape, the recording is run by hand).
    raw = (
        "thread (101): MainThread;main (/srv/benchmarks/servers.py:9);"
        "put (/srv/chatbot/hub.py:80);send_data (/v/lib/python3.11/site-packages/x.py:3) 6\n"
        "thread (101): MainThread;main (/srv/benchmarks/servers.py:9);"
        "put (/srv/chatbot/hub.py:80) 2\n"
        "thread (101): MainThread 2\n"
        "thread (102): chatbot store /srv/chatbot/store.py;commit (/srv/chatbot/store.py:5) 30\n"
        "thread (103): helper;idle (/srv/chatbot/x.py:1) 0\n"
    )
    summary = _load("profile", monkeypatch).summarise(raw, top=2)
    store, main = summary.split("\n## thread ")[1:]  # the busiest thread first; helper: < 2 %
    assert store.startswith("chatbot store: 30 samples")
    assert "100.0  commit (chatbot/store.py)" in store
    assert main.splitlines()[0] == "MainThread: 10 samples"
    assert "\n 60.0  send_data (x.py)\n 20.0  put (chatbot/hub.py)\n" in main
    total = main.split("total %  function (self + callees)\n")[1].splitlines()
    assert sorted(total) == [" 80.0  main (benchmarks/servers.py)", " 80.0  put (chatbot/hub.py)"]


def test_the_smoke_run_loads_with_picows_clients_when_installed(smoke: dict[str, Any]) -> None:
    expected = "picows" if importlib.util.find_spec("picows") else "websockets"
    assert smoke["report"]["settings"]["client"] == expected
    assert {m["client"] for m in smoke["report"]["measurements"]} == {expected}


def _run_script(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=SMOKE_TIMEOUT,
        cwd=ROOT,
        check=False,
    )


@pytest.mark.skipif(
    not (shutil.which("redis-server") or Path("/usr/bin/redis-server").exists()),
    reason="redis-server is not installed",
)
def test_redis_adds_the_redis_backed_json_servers(tmp_path: Path) -> None:
    result = _run_script(
        [str(BENCHMARKS / "run.py"), "--smoke", "--servers", "echo,chatbot-json", "--redis",
         "--no-plot", "--quiet", "--out", str(tmp_path)]
    )  # fmt: skip
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    report = json.loads((tmp_path / "smoke.json").read_text())
    assert report["settings"]["servers"] == ["echo", "chatbot-json", "chatbot-json-redis"]
    for m in report["measurements"]:
        assert "failed" not in m, m
        assert m["errors"] == 0 and m["round_trips"] > 0, m


@pytest.mark.skipif(
    not (shutil.which("redis-server") or Path("/usr/bin/redis-server").exists()),
    reason="redis-server is not installed",
)
def test_the_names_benchmark_claims_names_in_rooms_of_each_size() -> None:
    result = _run_script([str(BENCHMARKS / "names.py"), "--smoke"])
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    rows = [line.split() for line in result.stdout.splitlines()[1:]]
    assert [row[0] for row in rows] == ["10", "100"], result.stdout
    assert all(float(value) > 0 for row in rows for value in row[1:]), result.stdout


def test_every_prototype_patch_still_answers_every_message(tmp_path: Path) -> None:
    # benchmarks/prototypes.py patches the server in its own process: all patches at once must
    # still give every client complete replies (the figures are not checked).
    out = tmp_path / "prototypes.json"
    result = _run_script(
        [str(BENCHMARKS / "prototypes.py"), "measure", "--clients", "3", "--duration", "0.3",
         "--warmup", "0.1", "--rounds", "1", "--brain", "assistant",
         "--variants", "normal+ackfirst+coalesce+chunks+fewer", "--out", str(out)]
    )  # fmt: skip
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    measurements = json.loads(out.read_text())["measurements"]
    assert len(measurements) == 3
    for m in measurements:
        assert "failed" not in m, m
        assert m["errors"] == 0 and m["round_trips"] > 0, m
