"""Issue 16's means, prototyped by monkeypatching the server in the benchmark's process only.

Nothing here changes ``chatbot/``: each patch replaces one function of the running server
(``python benchmarks/prototypes.py serve PATCHES -- chatbot options``), and ``measure`` loads
the shipped server and each patched one side by side, as ``run.py`` does (same rounds, same
rotation, ratios paired with the raw echo of the same round). The patches are prototypes to
measure what each means pays, not the implementation: phase 2 puts each in the notebook named.

Patches (combine with ``+``):

- ``normal``: ``PRAGMA synchronous=NORMAL`` under WAL (``storage.sqlite._connect``): no fsync
  per commit; a killed process still loses nothing committed.
- ``ackfirst``: only the user's message waits for its commit. The bot's reply is written
  without waiting (``server.hub.Channel._finish``): ``reply.end`` leaves at once, its ``seq``
  predicted (the conversation's next number; exact here, one message in flight per client).
- ``coalesce``: frames made in the same loop turn leave in one ``transport.write``
  (``server.hub.Outbox.put``'s direct path: frames are framed at once, written at the turn's end).
- ``chunks``: a reply's chunks are gathered and sent as one ``reply.chunk`` frame per 5 ms
  (``server.hub.Channel._generate``), not one frame per word.
- ``fewer``: a reply complete before its first chunk is sent travels as ``reply.end`` alone
  (no ``reply.start``, no ``reply.chunk``: a protocol change, ``server.hub.Channel._answer``).

Diagnostics (not means; to see where the time goes): ``coalesce2`` (``coalesce``, written one
turn later, so that the ``ack`` and the first frames of the reply, made by the channel's worker
task in the next turn, share a write), ``memory`` (SQLite in memory: no file, no fsync; the
store's thread stays), ``switch`` (``sys.setswitchinterval(0.0002)``: the store's thread gets
the GIL sooner), ``inloop`` (with ``normal``: writes run on the loop's thread, one transaction
per loop turn; no thread hand-off).

Example::

    python benchmarks/prototypes.py measure --clients 100 --duration 3 --rounds 2 \\
        --variants normal,normal+ackfirst --brain echo
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from pathlib import Path
from typing import Any

PATCHES = ("normal", "ackfirst", "coalesce", "chunks", "fewer")
DIAGNOSTICS = ("coalesce2", "memory", "switch", "inloop")
CHUNK_EVERY = 0.005  # seconds: a reply's chunks made within this go in one frame


def patch_normal() -> None:
    from chatbot.storage import sqlite

    original = sqlite._connect

    def _connect(path: str, durability: str = "process") -> Any:
        connection = original(path, durability)
        connection.execute("PRAGMA synchronous=NORMAL")
        return connection

    sqlite._connect = _connect


def patch_ackfirst() -> None:
    from chatbot.brains.base import Turn
    from chatbot.server import hub as hub_module
    from chatbot.server import protocol

    HISTORY_TURNS = hub_module.HISTORY_TURNS
    pending_writes: set[asyncio.Task[Any]] = set()

    async def _finish(self: Any, item: Any, reply: str, text: str, status: str) -> None:
        hub = self.hub
        self.conversation.turns += [Turn("user", item.text), Turn("bot", text)]
        del self.conversation.turns[:-HISTORY_TURNS]
        # Queued now (the store's order is the call order); not awaited before reply.end.
        write = asyncio.ensure_future(
            hub.store.append(self.id, "bot", hub.brain.name, text, status)
        )
        pending_writes.add(write)
        write.add_done_callback(pending_writes.discard)
        self.broadcast(protocol.reply_end(reply, text, item.stored.seq + 1, status))
        hub.log.record("reply", item.client.number, f"{status} {text[:50]!r}")
        await asyncio.sleep(0)  # the append's coroutine queues its write before the next turn
        if self.room is None and (self.conversation.state or self.saved_state != "{}"):
            import json

            state = json.dumps(self.conversation.state, sort_keys=True, default=repr)
            if state != self.saved_state:
                save = asyncio.ensure_future(
                    hub.store.save_session(self.id, state=self.conversation.state)
                )
                pending_writes.add(save)
                save.add_done_callback(pending_writes.discard)
                self.saved_state = state

    hub_module.Channel._finish = _finish


def patch_coalesce(hops: int = 1) -> None:
    from chatbot.server import hub as hub_module

    original_put = hub_module.Outbox.put
    waiting: dict[Any, None] = {}  # connections with frames to write at the end of this turn
    scheduled = False

    def flush(hop: int = 1) -> None:
        nonlocal scheduled
        if hop < hops:  # wait for the tasks this turn woke (the reply's worker) to run too
            asyncio.get_running_loop().call_soon(flush, hop + 1)
            return
        scheduled = False
        connections = list(waiting)
        waiting.clear()
        for connection in connections:
            data = connection.protocol.data_to_send()
            chunk = b"".join(d for d in data if d)
            if chunk and not connection.transport.is_closing():
                connection.transport.write(chunk)

    def put(self: Any, text: str) -> None:
        nonlocal scheduled
        if self.overflowed or self.closed or self._sender is not None:
            original_put(self, text)
            return
        connection = self.connection
        transport = connection.transport
        if (
            transport.get_write_buffer_size() >= transport.get_write_buffer_limits()[1]
            or connection.protocol.state.name != "OPEN"
            or connection.send_in_progress is not None
        ):
            original_put(self, text)
            return
        connection.protocol.send_text(text.encode())  # framed now, written at the turn's end
        waiting[connection] = None
        if not scheduled:
            scheduled = True
            asyncio.get_running_loop().call_soon(flush)

    hub_module.Outbox.put = put


def patch_chunks() -> None:
    import contextlib as _contextlib

    from chatbot.server import hub as hub_module
    from chatbot.server import protocol

    async def _generate(self: Any, brain: Any, text: str, reply: str, parts: list[str]) -> None:
        buffered: list[str] = []
        since = 0.0
        try:
            async with _contextlib.aclosing(brain.stream(text, self.conversation)) as stream:
                async for chunk in stream:
                    parts.append(chunk)
                    if not buffered:
                        since = time.monotonic()
                    buffered.append(chunk)
                    if time.monotonic() - since >= CHUNK_EVERY:
                        self.broadcast(protocol.reply_chunk(reply, "".join(buffered)))
                        buffered.clear()
        finally:
            if buffered:
                self.broadcast(protocol.reply_chunk(reply, "".join(buffered)))

    hub_module.Channel._generate = _generate


def patch_fewer() -> None:
    from chatbot.server import hub as hub_module

    original_answer = hub_module.Channel._answer

    async def _answer(self: Any, item: Any) -> None:
        # reply.start and the chunks wait; if the reply goes on past CHUNK_EVERY (a real
        # stream), they are sent and the rest streams as shipped; if reply.end comes first,
        # they are dropped: reply.end carries the whole text.
        real_broadcast = self.broadcast
        held: list[str] = []
        started = time.monotonic()
        streaming = False

        def broadcast(text: str, *, skip: Any = None) -> None:
            nonlocal streaming
            if not streaming and text.startswith(
                ('{"type":"reply.start"', '{"type":"reply.chunk"')
            ):
                held.append(text)
                if time.monotonic() - started < CHUNK_EVERY:
                    return
                streaming = True
                for frame in held:
                    real_broadcast(frame)
                held.clear()
                return
            real_broadcast(text, skip=skip)

        self.broadcast = broadcast
        try:
            await original_answer(self, item)
        finally:
            del self.broadcast

    hub_module.Channel._answer = _answer


def patch_memory() -> None:
    from chatbot.storage import sqlite

    original = sqlite._connect
    sqlite._connect = lambda path: original(":memory:")


def patch_switch() -> None:
    # CPython hands the GIL to a waiting thread only after this interval (5 ms by default):
    # the store's thread, woken by a write, can wait that long while the loop runs Python.
    sys.setswitchinterval(0.0002)


def patch_inloop() -> None:
    # Writes run on the loop's thread, one transaction per loop turn (call_soon), on a second
    # connection to the same file; reads stay on the store's thread. No thread hand-off, no GIL
    # contention. Only with ``normal`` (a COMMIT that fsyncs would block the loop).
    from chatbot.storage import sqlite

    original_submit = sqlite.Store._submit
    states: dict[int, dict[str, Any]] = {}

    def flush(state: dict[str, Any]) -> None:
        state["scheduled"] = False
        batch, state["batch"] = state["batch"], []
        connection = state["connection"]
        settled = []
        connection.execute("BEGIN IMMEDIATE")
        for work, future in batch:
            try:
                settled.append((future, work(connection), None))
            except Exception as exc:  # a prototype: no savepoints, no retry
                settled.append((future, None, exc))
        connection.execute("COMMIT")
        for future, result, error in settled:
            if future.done():
                continue
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)

    def _submit(self: Any, work: Any, *, write: bool) -> Any:
        if not write:
            return original_submit(self, work, write=write)
        loop = asyncio.get_running_loop()
        state = states.get(id(self))
        if state is None:
            connection = sqlite._connect(self._writer.path)
            state = states[id(self)] = {"connection": connection, "batch": [], "scheduled": False}
        future = loop.create_future()
        state["batch"].append((work, future))
        if not state["scheduled"]:
            state["scheduled"] = True
            loop.call_soon(flush, state)
        return future

    sqlite.Store._submit = _submit


def patch_turn2() -> None:
    # Phase 2 (the hub writes once per loop turn): write one turn later still, so that the ack
    # (made in the connection's task) and the reply (made by the channel's worker in the next
    # turn) share a write.
    from chatbot.server import hub as hub_module

    original = hub_module.Outbox._write_turn

    def _write_turn(self: Any) -> None:
        if not getattr(self, "_waited", False):
            self._waited = True
            asyncio.get_running_loop().call_soon(self._write_turn)
            return
        self._waited = False
        original(self)

    hub_module.Outbox._write_turn = _write_turn


APPLY = {
    "normal": patch_normal,
    "ackfirst": patch_ackfirst,
    "coalesce": patch_coalesce,
    "chunks": patch_chunks,
    "fewer": patch_fewer,
    # Diagnostics, not means: where the time goes.
    "coalesce2": lambda: patch_coalesce(hops=2),  # ack and the reply's first frames together
    "memory": patch_memory,  # SQLite in memory: no file, no fsync (the store's thread stays)
    "switch": patch_switch,  # sys.setswitchinterval(0.2 ms) instead of 5 ms
    "inloop": patch_inloop,  # writes on the loop's thread, one commit per turn (with normal)
    "turn2": patch_turn2,  # phase 2: the hub's write per turn, one turn later (ack + reply)
}


def serve(patches: list[str], chatbot_args: list[str]) -> int:
    """Apply ``patches`` in this process, then run the chatbot as ``servers.py chatbot`` does."""
    for name in patches:
        APPLY[name]()
    from servers import _run_chatbot

    return _run_chatbot(chatbot_args)


def measure(args: argparse.Namespace) -> int:
    import run
    import servers
    from servers import ServerSpec

    brain, mode = args.brain, args.mode
    expect_echo = brain == "echo"
    specs = [ServerSpec("echo", "raw websockets echo", "text", ("echo",))]
    specs.append(
        ServerSpec("shipped", f"chatbot {mode}, {brain}", mode, ("chatbot", "--brain", brain),
                   expect_echo=expect_echo)
    )  # fmt: skip
    if args.before_tree:  # the same server from another copy of the package: before/after
        specs.append(
            ServerSpec("before", f"chatbot {mode}, {brain}, from {args.before_tree}", mode,
                       ("chatbot", "--brain", brain), expect_echo=expect_echo,
                       tree=args.before_tree)
        )  # fmt: skip
    for variant in filter(None, args.variants.split(",")):
        names = [n for n in variant.split("+") if n]
        unknown = [n for n in names if n not in APPLY]
        if unknown:
            raise SystemExit(f"unknown patch(es) {unknown}; expected some of {list(APPLY)}")
        specs.append(
            ServerSpec(variant, f"chatbot {mode}, {brain}, {variant}", mode,
                       ("prototype", "+".join(names), "--brain", brain), expect_echo=expect_echo)
        )  # fmt: skip
    servers.SERVERS = tuple(specs)  # run.run_rounds reads the list of servers from here
    run.SERVERS = servers.SERVERS
    settings = {
        "clients": [int(c) for c in args.clients.split(",")],
        "duration": args.duration,
        "warmup": args.warmup,
        "rounds": args.rounds,
        "servers": [s.name for s in specs],
        "processes": 0,
        "smoke": False,
        "literal_cli": False,
        "client": "auto",
    }
    measurements = run.run_rounds(settings, quiet=True)
    summary = run.summarise(measurements, settings["servers"])
    print(run.format_table(summary))
    if args.out:
        import json

        with open(args.out, "w") as file:
            json.dump({"settings": settings, "summary": summary, "measurements": measurements},
                      file, indent=1)  # fmt: skip
    return 0


SYSCALLS = "write,writev,sendto,sendmsg,read,recvfrom,fsync,fdatasync,futex,epoll_wait,epoll_pwait"


def syscalls(args: argparse.Namespace) -> int:
    """System calls per round trip, per variant (exact counts: no noise, unlike times)."""
    import re
    import signal
    import subprocess
    import tempfile

    from loadgen import LoadSpec, run_load
    from servers import ServerSpec, start_servers

    expect_echo = args.brain == "echo"
    variants = ["shipped", *filter(None, args.variants.split(","))]
    if args.before_tree:
        variants.append("before")
    print(f"system calls per round trip, {args.brain} brain, {args.clients} clients (strace -c -f)")
    names = SYSCALLS.split(",")
    print(f"{'variant':<40} {'rt':>6} " + " ".join(f"{n[:9]:>9}" for n in names))
    for variant in variants:
        if variant in ("shipped", "before"):
            tree = args.before_tree if variant == "before" else None
            spec = ServerSpec(variant, variant, "json", ("chatbot", "--brain", args.brain),
                              expect_echo=expect_echo, tree=tree)  # fmt: skip
        else:
            spec = ServerSpec(variant, variant, "json", ("prototype", variant, "--brain",
                              args.brain), expect_echo=expect_echo)  # fmt: skip
        with start_servers([spec]) as running, tempfile.TemporaryDirectory() as tmp:
            server = running[variant]
            out = Path(tmp) / "strace.txt"
            tracer = subprocess.Popen(
                ["strace", "-c", "-f", "-e", f"trace={SYSCALLS}", "-o", str(out),
                 "-p", str(server.pid)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            time.sleep(0.5)  # strace attaches to every thread
            load = LoadSpec(server.url, int(args.clients), duration=args.duration, warmup=0.0,
                            mode="json", expect_echo=expect_echo)  # fmt: skip
            result = run_load(load, server_pid=server.pid, progress=False)
            tracer.send_signal(signal.SIGINT)
            tracer.wait(30)
            counts = {}
            for line in out.read_text().splitlines():
                match = re.match(r"\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)$", line)
                if match:
                    counts[match[2]] = int(match[1])
        rts = max(1, result.round_trips)
        print(
            f"{variant:<40} {rts:>6} " + " ".join(f"{counts.get(n, 0) / rts:>9.2f}" for n in names),
            flush=True,
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["serve"]:
        patches = [p for p in argv[1].split("+") if p]
        return serve(patches, argv[2:])
    parser = argparse.ArgumentParser(prog="python benchmarks/prototypes.py measure")
    parser.add_argument("command", choices=["measure", "syscalls"])
    parser.add_argument("--variants", default=",".join(PATCHES))
    parser.add_argument("--brain", default="echo")
    parser.add_argument(
        "--mode", choices=["json", "text"], default="json", help="chatbot.v1 JSON or plain text"
    )
    parser.add_argument("--clients", default="100")
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out")
    parser.add_argument(
        "--before-tree",
        metavar="FOLDER",
        help="also measure the chatbot from FOLDER/chatbot (a copy of the package before a "
        "change), side by side: run as 'before'",
    )
    parsed = parser.parse_args(argv)
    return syscalls(parsed) if parsed.command == "syscalls" else measure(parsed)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
