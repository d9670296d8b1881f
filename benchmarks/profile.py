"""Profile one server under load with py-spy: ``python benchmarks/profile.py chatbot-json``.

Starts the server as ``run.py`` does (its own process, a fresh database), attaches
``py-spy record`` to it (sampling, from outside: the server runs unchanged), loads it with
``--clients`` closed-loop clients for ``--duration`` seconds, and writes a short text summary:
the load's figures, then per thread the functions with the most samples, by self time and by
total time (self plus callees). ``pip install py-spy`` first (it is not in requirements.txt).

py-spy counts a thread that waits inside a system call (a commit's fsync, epoll) as busy unless
it sees it idle; read the event loop's thread (``MainThread``) for the CPU the server spends per
message, and the store's thread for what SQLite does.

Example::

    python benchmarks/profile.py chatbot-json --clients 100 --duration 6 \\
        --out benchmarks/profiles/after-chatbot-json.txt
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from loadgen import LoadSpec, format_result, raise_fd_limit, run_load
from servers import SERVERS, start_servers

FRAME = re.compile(r"(?P<function>.*?) \((?P<file>.*?):\d+\)")


def _short(frame: str) -> str:
    match = FRAME.fullmatch(frame)
    if match is None:
        return frame
    file = re.sub(r".*/(site-packages|lib/python3\.\d+)/", "", match["file"])
    file = re.sub(r".*/(chatbot|benchmarks)/", r"\1/", file)
    return f"{match['function']} ({file})"


def summarise(raw: str, top: int = 25) -> str:
    """Summarise py-spy's raw (collapsed) stacks: per thread, the top functions."""
    by_thread: dict[str, list[tuple[list[str], int]]] = collections.defaultdict(list)
    for line in raw.splitlines():
        if not line.strip():
            continue
        stack, count = line.rsplit(" ", 1)
        thread, *frames = stack.split(";")
        name = re.sub(r"^thread \(\w+\): ", "", thread)
        name = re.sub(r" /\S+$", "", name)  # the store's thread is named after its file
        by_thread[name].append(([_short(f) for f in frames], int(count)))
    everything = sum(c for stacks in by_thread.values() for _, c in stacks)
    out = []
    for name, stacks in sorted(by_thread.items(), key=lambda kv: -sum(c for _, c in kv[1])):
        total = sum(c for _, c in stacks)
        if total < everything * 0.02:
            continue
        own: collections.Counter[str] = collections.Counter()
        inclusive: collections.Counter[str] = collections.Counter()
        for frames, count in stacks:
            if frames:
                own[frames[-1]] += count
            for frame in set(frames):
                inclusive[frame] += count
        out.append(f"\n## thread {name}: {total} samples\n\nself %  function")
        out += [f"{c * 100 / total:5.1f}  {f}" for f, c in own.most_common(top)]
        out.append("\ntotal %  function (self + callees)")
        out += [f"{c * 100 / total:5.1f}  {f}" for f, c in inclusive.most_common(top)]
    return "\n".join(out)


def _loop_us(raw: str) -> int:
    # The main thread's samples (py-spy --idle is off, so these are the busy ones).
    total = 0
    for line in raw.splitlines():
        if line.strip() and "MainThread" in line.split(";", 1)[0]:
            total += int(line.rsplit(" ", 1)[1])
    return total


def main(argv: list[str] | None = None) -> int:
    """``python benchmarks/profile.py SERVER [--clients N] [--duration S] [--out FILE]``."""
    parser = argparse.ArgumentParser(prog="python benchmarks/profile.py")
    parser.add_argument("server", choices=[s.name for s in SERVERS])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--duration", type=float, default=6.0)
    parser.add_argument("--rate", type=int, default=250, help="samples per second")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--out", type=Path, help="write the summary here (default: stdout)")
    parser.add_argument(
        "--patches",
        help="profile the server with benchmarks/prototypes.py's patches applied (e.g. "
        "normal+ackfirst); the server's brain is kept",
    )
    args = parser.parse_args(argv)
    py_spy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if py_spy is None:
        print("error: py-spy is not installed: pip install py-spy", file=sys.stderr)
        return 1
    raise_fd_limit()
    spec = next(s for s in SERVERS if s.name == args.server)
    if args.patches:
        if spec.args[0] != "chatbot":
            parser.error("--patches needs one of the chatbot servers")
        spec = dataclasses.replace(
            spec,
            name=f"{spec.name}+{args.patches}",
            args=("prototype", args.patches, *spec.args[1:]),
        )
    with tempfile.TemporaryDirectory() as tmp, start_servers([spec]) as running:
        server = running[spec.name]
        raw = Path(tmp) / "raw.txt"
        warmup = 1.0
        recorder = subprocess.Popen(
            [
                py_spy,
                "record",
                "-p",
                str(server.pid),
                "-d",
                str(int(args.duration + warmup + 2)),
                "-r",
                str(args.rate),
                "-f",
                "raw",
                "-o",
                str(raw),
                "--threads",
                "--nonblocking",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        load = LoadSpec(
            server.url,
            args.clients,
            duration=args.duration,
            warmup=warmup,
            mode=spec.mode,
            expect_echo=spec.expect_echo,
        )
        result = run_load(load, server_pid=server.pid, progress=False)
        recorder.wait()
        raw_text = raw.read_text()
        summary = summarise(raw_text, args.top)
    # What one sample is worth per round trip, over the whole recording (warm-up and the
    # seconds around the load included, when the loop idles: an upper bound on the share).
    recorded = int(args.duration + warmup + 2)
    per_rt = 1e6 / (args.rate * max(1.0, result.rate * recorded))
    text = (
        f"# py-spy profile: {spec.name} ({spec.label}), {args.clients} clients, "
        f"{result.client} load generator\n\n"
        f"{format_result(result)}\n"
        f"py-spy: {args.rate} samples/s for {recorded} s; a thread's share x its samples x "
        f"{per_rt * 1000:.3f} ns = its time per round trip\n"
        f"event loop thread (MainThread): {_loop_us(raw_text) * per_rt:.0f} us per round trip "
        f"(samples where it was not idle)\n{summary}\n"
    )
    if args.out:
        args.out.write_text(text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
