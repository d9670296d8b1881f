"""A WebSocket load generator: N closed-loop clients in worker processes, never in the server's.

Each worker process runs many clients on uvloop (when installed): picows clients, driven by
callbacks (``fastclient.py``; the default when picows is installed: fast enough to saturate the
server), or websockets' asyncio clients (``--client websockets``). A client sends a message,
waits for the whole reply, records the round trip's latency, and sends again, until the
measurement window ends or it has made ``max_round_trips``; then it stops by itself. The parent
process starts the workers, waits until every client is connected, starts them all at the same
instant, draws a progress bar on stderr, samples the server process's CPU and memory with psutil,
and merges what the workers measured.

Two modes:

- ``text``: send a text frame, wait for one text frame back.
- ``json``: offer the subprotocol ``chatbot.v1``, skip the ``welcome``, send
  ``{"type":"message","text":...}`` and count the round trip at the ``reply.end`` (the ``ack``,
  ``reply.start`` and ``reply.chunk`` frames in between are read and skipped).

Command line (one measurement against a running server)::

    python benchmarks/loadgen.py ws://127.0.0.1:8000/ --clients 100 --duration 5 \\
        --mode json --server-pid 12345
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import multiprocessing
import os
import queue
import resource
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from histogram import LatencyHistogram
from probe import ProbeError, ServerProbe
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException
from websockets.typing import Subprotocol

__all__ = [
    "MESSAGES",
    "LoadError",
    "LoadResult",
    "LoadSpec",
    "auto_processes",
    "client_kind",
    "main",
    "raise_fd_limit",
    "run_load",
]

Mode = Literal["text", "json"]

PROTOCOL = "chatbot.v1"
MESSAGES = (
    "Hello!",
    "What is an event loop?",
    "How do I cancel a task?",
    "I feel a bit lost with await today.",
    "Tell me about WebSockets and backpressure.",
    "thanks",
)
"""What the clients say, in turn: short chat lines that reach every stage of the assistant."""

CONNECT_PARALLEL = 64  # handshakes in flight at once, over all workers: asyncio's listen backlog
# is 100 by default, and a SYN dropped from a full backlog is retried only a second later.
MAX_FRAMES_PER_REPLY = 10_000  # a JSON reply that never ends is an error, not an endless loop
READY_GRACE = 30.0  # seconds for worker processes to start (spawn) on top of connect_timeout
DONE_GRACE = 15.0  # seconds for workers to report after the last round trip's timeout
PROGRESS_EVERY = 0.5  # seconds between a worker's progress reports
# Skipped without parsing: decoding every frame's JSON would cost the load generator as much CPU
# as the server spends building it. Anything else is parsed.
_SKIPPED_PREFIXES = ('{"type":"ack"', '{"type":"reply.start"', '{"type":"reply.chunk"')
_REPLY_END_TYPE = "reply.end"


class LoadError(Exception):
    """The load could not be generated: workers did not start, or no client could connect."""


@dataclass(frozen=True)
class LoadSpec:
    """One measurement: how many clients, for how long, in which mode, against which URL.

    Attributes:
        url: the server's WebSocket URL, on 127.0.0.1.
        clients: concurrent connections, each doing one round trip at a time.
        duration: seconds measured.
        warmup: seconds of load before the measurement starts (not counted).
        mode: ``"text"`` or ``"json"`` (``chatbot.v1``).
        processes: worker processes; 0 picks :func:`auto_processes`.
        expect_echo: count a reply that is not the message itself as an error.
        max_round_trips: the most round trips one client makes, measured or not.
        connect_timeout: seconds for one client's opening handshake (and ``welcome``).
        reply_timeout: seconds for one round trip; a client that waits longer gives up (an
            error) and stops.
        client: ``"picows"``, ``"websockets"``, or ``"auto"`` (picows if installed).
    """

    url: str
    clients: int
    duration: float = 5.0
    warmup: float = 1.0
    mode: Mode = "text"
    processes: int = 0
    expect_echo: bool = True
    max_round_trips: int = 1_000_000
    connect_timeout: float = 30.0
    reply_timeout: float = 10.0
    client: str = "auto"

    def __post_init__(self) -> None:
        if not self.url.startswith(("ws://127.0.0.1:", "ws://localhost:")):
            raise ValueError(f"the load generator only talks to loopback; got {self.url!r}")
        if self.clients < 1 or self.duration <= 0 or self.warmup < 0:
            raise ValueError(
                f"expected clients >= 1, duration > 0 and warmup >= 0; got clients="
                f"{self.clients}, duration={self.duration}, warmup={self.warmup}"
            )
        if self.mode not in ("text", "json"):
            raise ValueError(f"mode must be 'text' or 'json', got {self.mode!r}")
        if self.client not in ("auto", "picows", "websockets"):
            raise ValueError(
                f"client must be 'auto', 'picows' or 'websockets', got {self.client!r}"
            )


@dataclass
class LoadResult:
    """What one measurement found. Latencies in microseconds, CPU in % of one core.

    ``bottleneck`` is a hint, not a proof: ``"server"`` when the server's event-loop thread was
    busy at least 90 % of the time, ``"server-gil"`` when the loop was not but the server's
    threads together were (they share one GIL), ``"loadgen"`` when one load generator process
    was, ``"machine"`` when every core was at least 90 % busy (then the
    load generator or other work on the machine limited the figures), else ``"none"``.
    """

    clients: int
    connected: int
    mode: str
    processes: int
    duration: float
    round_trips: int
    rate: float
    p50_us: float
    p95_us: float
    p99_us: float
    max_us: float
    mean_us: float
    errors: int
    error_kinds: dict[str, int]
    server_cpu_s: float | None = None
    server_cpu_percent: float | None = None
    server_loop_cpu_percent: float | None = None
    server_rss_bytes: int | None = None
    server_rss_peak_bytes: int | None = None
    loadgen_cpu_percent: float = 0.0
    machine_cpu_percent: float | None = None
    other_cpu_percent: float | None = None
    cores: int = 1
    bottleneck: str = "none"
    client: str = "websockets"
    histogram: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (NaN latencies become None)."""
        data = asdict(self)
        for key, value in data.items():
            if isinstance(value, float) and math.isnan(value):
                data[key] = None
        return data


def client_kind(wanted: str = "auto") -> str:
    """The client the workers use: ``wanted``, or for ``"auto"`` picows when it is installed."""
    if wanted != "auto":
        return wanted
    try:
        import picows  # noqa: F401
    except ImportError:
        return "websockets"
    return "picows"


def auto_processes(clients: int) -> int:
    """Worker processes for ``clients``: one per core (at least 2), never more than clients."""
    return max(1, min(clients, max(2, os.cpu_count() or 1)))


def raise_fd_limit(wanted: int = 65536) -> int:
    """Raise this process's open-file limit towards ``wanted`` (children inherit it); return it.

    A thousand connections need a thousand descriptors in the server and as many, in all, in the
    load generator; the soft limit is often 1024.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            return target
    return soft


# --- The worker process: many asyncio clients.


class _ReplyError(Exception):
    """A round trip that ended badly; its ``kind`` is what the report counts."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


@dataclass
class _WorkerState:
    histogram: LatencyHistogram = field(default_factory=LatencyHistogram)
    measured: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    cpu_start: float = 0.0
    cpu_end: float = 0.0

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


def _error_kind(exc: BaseException) -> str:
    if isinstance(exc, _ReplyError):
        return exc.kind
    if isinstance(exc, InvalidStatus):
        return f"handshake refused: HTTP {exc.response.status_code}"
    if isinstance(exc, ConnectionClosed):
        code = exc.rcvd.code if exc.rcvd is not None else 1006
        return f"connection closed: {code}"
    if isinstance(exc, TimeoutError):
        return "timeout"
    return type(exc).__name__


async def _connect_one(spec: LoadSpec, gate: asyncio.Semaphore) -> ClientConnection:
    async with gate, asyncio.timeout(spec.connect_timeout):
        subprotocols = [Subprotocol(PROTOCOL)] if spec.mode == "json" else None
        # proxy=None: loopback, whatever proxy the environment names. Compression: the
        # client's default offer; the server decides.
        ws = await connect(
            spec.url, proxy=None, subprotocols=subprotocols, open_timeout=spec.connect_timeout
        )
        if spec.mode == "json":
            try:
                if ws.subprotocol != PROTOCOL:
                    raise _ReplyError(f"server did not select {PROTOCOL}")
                welcome = await ws.recv()
                if not isinstance(welcome, str) or '"welcome"' not in welcome[:40]:
                    raise _ReplyError(f"expected welcome, got {str(welcome)[:40]!r}")
            except BaseException:
                await ws.close()
                raise
        return ws


async def _round_trip(ws: ClientConnection, mode: Mode, frame: str) -> str:
    """Send ``frame``; return the whole reply's text."""
    await ws.send(frame)
    if mode == "text":
        reply = await ws.recv()
        if not isinstance(reply, str):
            raise _ReplyError("binary reply")
        return reply
    for _ in range(MAX_FRAMES_PER_REPLY):
        received = await ws.recv()
        if isinstance(received, str) and received.startswith(_SKIPPED_PREFIXES):
            continue
        message = json.loads(received)
        kind = message.get("type")
        if kind == _REPLY_END_TYPE:
            if message.get("status") != "complete":
                raise _ReplyError(f"reply.end status {message.get('status')}")
            return str(message.get("text", ""))
        if kind == "error":
            raise _ReplyError(f"error {message.get('code')}")
        # welcome, history, presence...: not an answer to our message; read on.
    raise _ReplyError("reply never ended")


async def _client(
    ws: ClientConnection,
    spec: LoadSpec,
    number: int,
    measure_from: float,
    measure_until: float,
    state: _WorkerState,
) -> None:
    """One closed-loop client: send, wait for the reply, send again, until time or count is up.

    No timeout per round trip (a timer per message would cost the load generator CPU that the
    server should get): the caller cancels every client still waiting ``reply_timeout`` after the
    end, and each one cancelled counts as a ``timeout`` error.
    """
    frames = _frames(spec.mode)
    for sent in range(spec.max_round_trips):
        if time.monotonic() >= measure_until:
            return
        turn = (number + sent) % len(MESSAGES)
        started = time.perf_counter_ns()
        try:
            reply = await _round_trip(ws, spec.mode, frames[turn])
            if spec.expect_echo and reply != MESSAGES[turn]:
                # The plain-text chatbot answers its rate limit in words.
                slow = reply.startswith("Slow down")
                raise _ReplyError("rate limited (Slow down)" if slow else "unexpected reply")
        except asyncio.CancelledError:
            state.error("timeout")
            raise
        except (_ReplyError, WebSocketException, OSError, ValueError) as exc:
            state.error(_error_kind(exc))
            if isinstance(exc, _ReplyError) and exc.kind != "reply never ended":
                continue  # the connection is still in step: go on
            return  # closed, or out of step: this client is done
        elapsed_us = (time.perf_counter_ns() - started) // 1000
        # Counted when it ends inside the window; one started during the warm-up counts too.
        if measure_from <= time.monotonic() <= measure_until:
            state.histogram.record(elapsed_us)
            state.measured += 1


def _frames(mode: Mode) -> list[str]:
    # Encoded once: the load generator's CPU goes to the server, not to json.dumps.
    if mode == "text":
        return list(MESSAGES)
    return [json.dumps({"type": "message", "text": text}) for text in MESSAGES]


async def _report_progress(results: Any, index: int, state: _WorkerState, until: float) -> None:
    deadline = until + PROGRESS_EVERY
    while time.monotonic() < deadline:
        await asyncio.sleep(PROGRESS_EVERY)
        results.put(("progress", index, state.measured, sum(state.errors.values())))


async def _sample_cpu(state: _WorkerState, measure_from: float, measure_until: float) -> None:
    # process_time() covers every thread of this process: its share of the machine.
    await asyncio.sleep(max(0.0, measure_from - time.monotonic()))
    state.cpu_start = time.process_time()
    await asyncio.sleep(max(0.0, measure_until - time.monotonic()))
    state.cpu_end = time.process_time()


async def _start_window(
    spec: LoadSpec, index: int, state: _WorkerState, results: Any, go: Any, start_at: Any
) -> tuple[float, float, asyncio.Task[None], asyncio.Task[None]] | None:
    """Wait for the parent's "go" (None: it never came); start the CPU and progress watchers.

    Returns the measured window (monotonic) and the two watchers, for :func:`_end_window`.
    """
    # The parent says "go" once every worker is connected; a parent gone means no go.
    if not await asyncio.to_thread(go.wait, spec.connect_timeout + READY_GRACE * 2):
        return None
    # One wall-clock instant for every worker, turned into this process's monotonic clock.
    begin = time.monotonic() + (start_at.value - time.time())
    measure_from = begin + spec.warmup
    measure_until = measure_from + spec.duration
    await asyncio.sleep(max(0.0, begin - time.monotonic()))
    cpu = asyncio.create_task(_sample_cpu(state, measure_from, measure_until))
    progress = asyncio.create_task(_report_progress(results, index, state, measure_until))
    return measure_from, measure_until, cpu, progress


async def _end_window(cpu: asyncio.Task[None], progress: asyncio.Task[None]) -> None:
    await cpu
    progress.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await progress


async def _worker_main(
    spec: LoadSpec, index: int, clients: int, first: int, results: Any, go: Any, start_at: Any
) -> None:
    if client_kind(spec.client) == "picows":
        await _fast_worker_main(spec, index, clients, first, results, go, start_at)
        return
    state = _WorkerState()
    gate = asyncio.Semaphore(
        max(1, CONNECT_PARALLEL // _processes_for(spec.processes, spec.clients))
    )
    attempts = [_connect_one(spec, gate) for _ in range(clients)]
    outcomes = await asyncio.gather(*attempts, return_exceptions=True)
    connections: list[ClientConnection] = []
    for outcome in outcomes:
        if isinstance(outcome, ClientConnection):
            connections.append(outcome)
        elif isinstance(outcome, BaseException):
            state.error(f"connect: {_error_kind(outcome)}")
    results.put(("ready", index, len(connections), dict(state.errors)))
    try:
        window = await _start_window(spec, index, state, results, go, start_at)
        if window is None:
            return
        measure_from, measure_until, cpu, progress = window
        clients_done = asyncio.gather(
            *(
                _client(ws, spec, first + n, measure_from, measure_until, state)
                for n, ws in enumerate(connections)
            )
        )
        try:
            async with asyncio.timeout(measure_until - time.monotonic() + spec.reply_timeout + 5):
                await clients_done
        except TimeoutError:
            pass  # every client cancelled has counted its "timeout" error
        await _end_window(cpu, progress)
    finally:
        await _close_all(connections)
        results.put(
            (
                "done",
                index,
                {
                    "histogram": state.histogram.to_dict(),
                    "measured": state.measured,
                    "errors": state.errors,
                    "cpu_s": state.cpu_end - state.cpu_start,
                    "connected": len(connections),
                },
            )
        )


async def _fast_worker_main(
    spec: LoadSpec, index: int, clients: int, first: int, results: Any, go: Any, start_at: Any
) -> None:
    # The same steps as _worker_main, with picows clients whose closed loop runs in callbacks.
    from fastclient import FastClient, connect_fast

    state = _WorkerState()
    gate = asyncio.Semaphore(
        max(1, CONNECT_PARALLEL // _processes_for(spec.processes, spec.clients))
    )

    async def one() -> FastClient:
        async with gate:
            return await connect_fast(
                spec.url, spec.mode, spec.expect_echo, MESSAGES, spec.connect_timeout
            )

    outcomes = await asyncio.gather(*(one() for _ in range(clients)), return_exceptions=True)
    connections = [o for o in outcomes if isinstance(o, FastClient)]
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            state.error(f"connect: {_error_kind(outcome)}")
    results.put(("ready", index, len(connections), dict(state.errors)))
    try:
        window = await _start_window(spec, index, state, results, go, start_at)
        if window is None:
            return
        measure_from, measure_until, cpu, progress = window
        for n, client in enumerate(connections):
            client.start(state, first + n, measure_from, measure_until, spec.max_round_trips)
        try:
            async with asyncio.timeout(measure_until - time.monotonic() + spec.reply_timeout + 5):
                await asyncio.gather(*(c.done for c in connections))
        except TimeoutError:
            for client in connections:
                client.timed_out()
        await _end_window(cpu, progress)
    finally:
        for client in connections:
            client.close()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                await asyncio.gather(
                    *(c.transport.wait_disconnected() for c in connections if c.transport),
                    return_exceptions=True,
                )
        results.put(
            (
                "done",
                index,
                {
                    "histogram": state.histogram.to_dict(),
                    "measured": state.measured,
                    "errors": state.errors,
                    "cpu_s": state.cpu_end - state.cpu_start,
                    "connected": len(connections),
                },
            )
        )


def _processes_for(processes: int, clients: int) -> int:
    # ``processes``, or auto_processes() when it is 0.
    return processes if processes > 0 else auto_processes(clients)


async def _close_all(connections: Sequence[ClientConnection]) -> None:
    try:
        async with asyncio.timeout(10):
            await asyncio.gather(*(ws.close() for ws in connections), return_exceptions=True)
    except TimeoutError:
        for ws in connections:
            ws.transport.abort()


def _worker(
    spec: LoadSpec, index: int, clients: int, first: int, results: Any, go: Any, start_at: Any
) -> None:
    """The worker process's entry point (spawned: it must be importable, and picklable)."""
    raise_fd_limit()
    try:
        import uvloop

        factory = uvloop.new_event_loop
    except ImportError:
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(_worker_main(spec, index, clients, first, results, go, start_at))


# --- The parent: start workers, give the signal, watch the server, merge.


class _ProgressBar:
    """One line on stderr, redrawn (or, when stderr is not a terminal, printed) once a second."""

    def __init__(self, label: str, total: float, enabled: bool) -> None:
        self.label, self.total, self.enabled = label, total, enabled
        self.tty = sys.stderr.isatty()
        self.last = 0.0

    def update(self, elapsed: float, round_trips: int, errors: int, force: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not force and now - self.last < 1.0):
            return
        self.last = now
        done = min(1.0, max(0.0, elapsed / self.total))
        bar = "#" * round(done * 20) + "-" * (20 - round(done * 20))
        rate = round_trips / elapsed if elapsed > 0 else 0.0
        line = (
            f"{self.label} [{bar}] {min(elapsed, self.total):4.1f}/{self.total:g} s "
            f"{round_trips:>9,} round trips {rate:>9,.0f}/s errors {errors}"
        )
        print(("\r" + line) if self.tty else line, end="" if self.tty else "\n", file=sys.stderr)
        sys.stderr.flush()

    def finish(self) -> None:
        if self.enabled and self.tty:
            print(file=sys.stderr)


def _split(clients: int, processes: int) -> list[int]:
    base, extra = divmod(clients, processes)
    return [base + (1 if i < extra else 0) for i in range(processes)]


def run_load(
    spec: LoadSpec,
    *,
    server_pid: int | None = None,
    label: str = "",
    progress: bool = True,
) -> LoadResult:
    """Run one measurement: start workers, connect, load the server, and merge the results.

    Args:
        spec: what to measure.
        server_pid: the server's process ID, for its CPU and memory (needs psutil).
        label: shown at the start of the progress bar.
        progress: draw the progress bar on stderr.

    Raises:
        LoadError: a worker did not start or report in time, no client could connect, or the
            server cannot be measured (psutil missing, no such process).

    Example::

        result = run_load(LoadSpec("ws://127.0.0.1:8000/", clients=10, duration=2))
        print(result.rate, result.p99_us)
    """
    raise_fd_limit()
    try:
        probe = ServerProbe(server_pid)
    except ProbeError as exc:
        raise LoadError(str(exc)) from exc
    processes = _processes_for(spec.processes, spec.clients)
    shares = _split(spec.clients, min(processes, spec.clients))
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    go = context.Event()
    start_at = context.Value("d", 0.0)
    workers = []
    first = 0
    for index, share in enumerate(shares):
        worker = context.Process(
            target=_worker,
            args=(spec, index, share, first, results, go, start_at),
            name=f"loadgen-{index}",
            daemon=True,
        )
        worker.start()
        workers.append(worker)
        first += share
    bar = _ProgressBar(label or spec.url, spec.duration, progress)
    try:
        return _drive(spec, probe, workers, results, go, start_at, bar)
    finally:
        bar.finish()
        go.set()  # a worker still waiting for the signal goes on, and then ends by itself
        for worker in workers:
            worker.join(timeout=spec.reply_timeout + DONE_GRACE)
            if worker.is_alive():
                worker.kill()
                worker.join(timeout=5)
        results.close()
        results.join_thread()


def _drive(
    spec: LoadSpec,
    probe: ServerProbe,
    workers: list[Any],
    results: Any,
    go: Any,
    start_at: Any,
    bar: _ProgressBar,
) -> LoadResult:
    connected, connect_errors = 0, dict[str, int]()
    ready: set[int] = set()
    deadline = time.monotonic() + spec.connect_timeout + READY_GRACE
    while len(ready) < len(workers):
        if time.monotonic() > deadline:
            raise LoadError(f"{len(workers) - len(ready)} worker(s) not ready in time")
        if any(w.exitcode is not None for i, w in enumerate(workers) if i not in ready):
            raise LoadError("a load generator worker exited before it was ready")
        with contextlib.suppress(queue.Empty):
            kind, index, *rest = results.get(timeout=0.5)
            if kind == "ready":
                ready.add(index)
                connected += rest[0]
                for error, count in rest[1].items():
                    connect_errors[error] = connect_errors.get(error, 0) + count
    if connected == 0:
        go.set()
        raise LoadError(f"no client could connect to {spec.url}: {connect_errors}")

    start_wall = time.time() + 0.2  # every worker is waiting: 0.2 s to read the signal
    start_at.value = start_wall
    go.set()
    begin = time.monotonic() + (start_wall - time.time())
    measure_from, measure_until = begin + spec.warmup, begin + spec.warmup + spec.duration

    counts: dict[int, tuple[int, int]] = {}
    done: dict[int, dict[str, Any]] = {}

    def pump(until: float) -> None:
        # Read worker messages until ``until`` (or until every worker is done).
        while len(done) < len(workers):
            left = until - time.monotonic()
            if left <= 0:
                return
            try:
                kind, index, *rest = results.get(timeout=min(left, 0.25))
            except queue.Empty:
                continue
            if kind == "progress":
                counts[index] = (rest[0], rest[1])
            elif kind == "done":
                done[index] = rest[0]
            measured = sum(c for c, _ in counts.values())
            bar.update(
                time.monotonic() - measure_from, measured, sum(e for _, e in counts.values())
            )

    pump(measure_from)
    cpu_before, machine_before = probe.cpu(), probe.machine_busy()
    probe.rss()
    second = measure_from
    while second < measure_until:
        second = min(second + 1.0, measure_until)
        pump(second)
        probe.rss()  # the peak, sampled once a second
    cpu_after, machine_after = probe.cpu(), probe.machine_busy()
    rss = probe.rss()
    pump(measure_until + spec.reply_timeout + DONE_GRACE)
    if len(done) < len(workers):
        raise LoadError(f"{len(workers) - len(done)} worker(s) did not report in time")
    bar.update(spec.duration, sum(d["measured"] for d in done.values()), 0, force=True)
    return _merge(
        spec, len(workers), connect_errors, done, cpu_before, cpu_after,
        machine_before, machine_after, rss, probe,
    )  # fmt: skip


def _merge(
    spec: LoadSpec,
    processes: int,
    connect_errors: dict[str, int],
    done: dict[int, dict[str, Any]],
    cpu_before: tuple[float, float] | None,
    cpu_after: tuple[float, float] | None,
    machine_before: float | None,
    machine_after: float | None,
    rss: int | None,
    probe: ServerProbe,
) -> LoadResult:
    histogram = LatencyHistogram()
    errors: dict[str, int] = {}
    for report in done.values():
        histogram.merge(LatencyHistogram.from_dict(report["histogram"]))
        for kind, count in report["errors"].items():
            errors[kind] = errors.get(kind, 0) + count
    cores = os.cpu_count() or 1
    loadgen = 100 * sum(d["cpu_s"] for d in done.values()) / spec.duration
    server_cpu = server_loop = machine = None
    if cpu_before is not None and cpu_after is not None:
        server_cpu = 100 * (cpu_after[0] - cpu_before[0]) / spec.duration
        server_loop = 100 * (cpu_after[1] - cpu_before[1]) / spec.duration
    if machine_before is not None and machine_after is not None:
        machine = 100 * (machine_after - machine_before) / spec.duration
    busiest_worker = max(100 * d["cpu_s"] / spec.duration for d in done.values())
    bottleneck = "none"
    if server_loop is not None and server_loop >= 90:
        bottleneck = "server"
    elif server_cpu is not None and server_cpu >= 90:
        # The loop waits, but the process's threads together use a core: the store's thread
        # and the loop take turns holding the GIL (one core of Python for both).
        bottleneck = "server-gil"
    elif busiest_worker >= 90:
        bottleneck = "loadgen"  # a worker's one thread was saturated: add --processes
    elif machine is not None and machine >= 0.9 * 100 * cores:
        bottleneck = "machine"
    return LoadResult(
        clients=spec.clients,
        connected=sum(d["connected"] for d in done.values()),
        mode=spec.mode,
        processes=processes,
        duration=spec.duration,
        round_trips=histogram.total,
        rate=histogram.total / spec.duration,
        p50_us=histogram.percentile(50),
        p95_us=histogram.percentile(95),
        p99_us=histogram.percentile(99),
        max_us=float(histogram.max) if histogram.total else math.nan,
        mean_us=histogram.mean,
        errors=sum(errors.values()),
        error_kinds=dict(sorted(errors.items())),
        server_cpu_s=(cpu_after[0] - cpu_before[0]) if cpu_before and cpu_after else None,
        server_cpu_percent=server_cpu,
        server_loop_cpu_percent=server_loop,
        server_rss_bytes=rss,
        server_rss_peak_bytes=probe.rss_peak if probe.process is not None else None,
        loadgen_cpu_percent=loadgen,
        machine_cpu_percent=machine,
        other_cpu_percent=None
        if machine is None
        else max(0.0, machine - loadgen - (server_cpu or 0.0)),
        cores=cores,
        bottleneck=bottleneck,
        client=client_kind(spec.client),
        histogram=histogram.to_dict(),
    )


def format_result(result: LoadResult) -> str:
    """A few human lines about one measurement."""
    lines = [
        f"{result.round_trips:,} round trips in {result.duration:g} s: {result.rate:,.0f}/s "
        f"({result.connected}/{result.clients} clients, {result.processes} {result.client} "
        f"processes, {result.mode})",
        f"latency p50 {result.p50_us / 1000:.2f} ms, p95 {result.p95_us / 1000:.2f} ms, "
        f"p99 {result.p99_us / 1000:.2f} ms, max {result.max_us / 1000:.2f} ms",
        f"errors {result.errors} {result.error_kinds or ''}".rstrip(),
        f"load generator CPU {result.loadgen_cpu_percent:.0f} % of one core",
    ]
    if result.server_cpu_percent is not None:
        lines.append(
            f"server CPU {result.server_cpu_percent:.0f} % (event loop thread "
            f"{result.server_loop_cpu_percent:.0f} %), RSS "
            f"{(result.server_rss_bytes or 0) / 2**20:.1f} MiB, machine "
            f"{result.machine_cpu_percent:.0f} % of {result.cores * 100} %: bottleneck "
            f"{result.bottleneck}"
        )
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/loadgen.py",
        description="Load a WebSocket server on 127.0.0.1 with closed-loop clients.",
    )
    parser.add_argument("url", help="ws://127.0.0.1:PORT/")
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds measured")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds before measuring")
    parser.add_argument("--mode", choices=["text", "json"], default="text")
    parser.add_argument("--processes", type=int, default=0, help="0: one per core")
    parser.add_argument("--server-pid", type=int, help="the server's PID, for CPU and RSS")
    parser.add_argument(
        "--client", choices=["auto", "picows", "websockets"], default="auto",
        help="the clients: picows (fast, callbacks) or websockets; auto: picows if installed",
    )  # fmt: skip
    parser.add_argument(
        "--any-reply", action="store_true", help="accept any reply (not an echo server)"
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    return parser


def main(argv: Iterable[str] | None = None) -> int:
    """Run one measurement from the command line; return the exit status."""
    args = _parser().parse_args(None if argv is None else list(argv))
    spec = LoadSpec(
        args.url,
        args.clients,
        duration=args.duration,
        warmup=args.warmup,
        mode=args.mode,
        processes=args.processes,
        expect_echo=not args.any_reply,
        client=args.client,
    )
    try:
        result = run_load(spec, server_pid=args.server_pid)
    except LoadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result.to_dict() | {"histogram": None}, indent=2))
    else:
        print(format_result(result))
    return 0 if result.errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
