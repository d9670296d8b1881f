"""Benchmark every server side by side: ``python benchmarks/run.py``.

For each round and each client count, every server is started fresh (its own process, its own
database), then loaded one after the other: the servers are interleaved within a round, and the
order rotates from round to round, so a slow moment of the machine hits them all alike. Each
server's figures are divided by the raw echo's figures *of the same round and client count*
(paired ratios); the table shows the median over rounds and the spread (lowest, highest).

Writes ``benchmarks/results/latest.json`` and ``latest.png`` (``smoke.*`` with ``--smoke``).

Examples::

    python benchmarks/run.py                                  # 1, 100, 1000 clients, 3 rounds
    python benchmarks/run.py --clients 1,100 --duration 3 --rounds 1
    python benchmarks/run.py --smoke                          # a few seconds: what CI runs
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from loadgen import (
    LoadError,
    LoadResult,
    LoadSpec,
    auto_processes,
    client_kind,
    raise_fd_limit,
    run_load,
)
from servers import DEFAULT_SERVERS, SERVERS, ServerError, ServerSpec, start_servers

__all__ = ["build_parser", "main", "summarise"]

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
BASELINE = "echo"
SCHEMA = 1
SMOKE = {"clients": [3], "duration": 0.5, "warmup": 0.1, "rounds": 1}


def build_parser() -> argparse.ArgumentParser:
    """The parser for ``python benchmarks/run.py``."""
    parser = argparse.ArgumentParser(
        prog="python benchmarks/run.py",
        description="Benchmark the raw websockets echo, the seed-style handler and the chatbot "
        "side by side, on 127.0.0.1.",
    )
    parser.add_argument(
        "--clients", default="1,100,1000", help="client counts, comma-separated (%(default)s)"
    )
    parser.add_argument("--duration", type=float, default=5.0, help="seconds measured each time")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of load before that")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (%(default)s)")
    parser.add_argument(
        "--servers",
        default=",".join(DEFAULT_SERVERS),
        help="servers to run, comma-separated (%(default)s; also: "
        + ", ".join(s.name for s in SERVERS if s.name not in DEFAULT_SERVERS)
        + ")",
    )
    parser.add_argument(
        "--redis",
        action="store_true",
        help="also measure each JSON server chosen with its sessions in Redis (a redis-server "
        "started for the run, append-only file fsynced every second)",
    )
    parser.add_argument(
        "--client",
        choices=["auto", "picows", "websockets"],
        default="auto",
        help="the load generator's clients: picows on uvloop (fast enough to saturate the "
        "server) or websockets; auto: picows if installed",
    )
    parser.add_argument(
        "--processes", type=int, default=0, help="load generator processes (0: auto)"
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="a few seconds in all: 3 clients in 2 processes, 0.5 s, every server once "
        "(what CI runs)",
    )
    parser.add_argument(
        "--literal-cli",
        action="store_true",
        help="start the chatbot with `python -m chatbot` as shipped (its rate limit and "
        "connection cap apply: expect errors)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for JSON and PNG")
    parser.add_argument(
        "--from-json",
        metavar="PATH",
        type=Path,
        help="measure nothing: summarise an earlier report again (table, summary, PNG)",
    )
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "clients": [int(c) for c in str(args.clients).split(",") if c.strip()],
        "duration": args.duration,
        "warmup": args.warmup,
        "rounds": args.rounds,
    }
    if args.smoke:
        settings |= SMOKE
    if not settings["clients"] or min(settings["clients"]) < 1 or settings["rounds"] < 1:
        raise SystemExit("error: --clients needs numbers >= 1 and --rounds a number >= 1")
    names = [n.strip() for n in str(args.servers).split(",") if n.strip()]
    known = {s.name: s for s in SERVERS}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"error: unknown server(s) {unknown}; expected some of {list(known)}")
    if args.redis:
        names += [
            f"{n}-redis" for n in names if f"{n}-redis" in known and f"{n}-redis" not in names
        ]
    settings["servers"] = names
    settings["client"] = client_kind(args.client)
    settings["processes"] = args.processes
    settings["smoke"] = args.smoke
    settings["literal_cli"] = args.literal_cli
    return settings


def _measure_one(
    spec: ServerSpec, url: str, pid: int, clients: int, settings: dict[str, Any], quiet: bool
) -> LoadResult:
    load = LoadSpec(
        url,
        clients,
        duration=settings["duration"],
        warmup=settings["warmup"],
        mode=spec.mode,
        processes=settings["processes"],
        expect_echo=spec.expect_echo,
        client=settings.get("client", "auto"),
    )
    return run_load(load, server_pid=pid, label=f"{spec.name:>14} {clients:>5}", progress=not quiet)


def run_rounds(settings: dict[str, Any], quiet: bool = False) -> list[dict[str, Any]]:
    """Every measurement: rounds x client counts x servers (interleaved, rotated per round)."""
    specs = [s for s in SERVERS if s.name in settings["servers"]]
    measurements: list[dict[str, Any]] = []
    for round_ in range(settings["rounds"]):
        # Rotate: the server measured first in a round is not always the same one.
        order = specs[round_ % len(specs) :] + specs[: round_ % len(specs)]
        for clients in settings["clients"]:
            base = {"round": round_, "clients": clients}
            try:
                with start_servers(order, literal_cli=settings["literal_cli"]) as running:
                    for spec in order:
                        server = running[spec.name]
                        row = base | {"server": spec.name, "mode": spec.mode}
                        try:
                            result = _measure_one(
                                spec, server.url, server.pid, clients, settings, quiet
                            )
                        except LoadError as exc:
                            measurements.append(row | {"failed": str(exc)})
                            continue
                        finally:
                            alive = server.alive()
                        measurements.append(
                            row
                            | result.to_dict()
                            | {"server_alive": alive, "load_average": os.getloadavg()}
                        )
            except ServerError as exc:
                for spec in order:
                    done = {(m["server"], m["round"], m["clients"]) for m in measurements}
                    if (spec.name, round_, clients) not in done:
                        measurements.append(base | {"server": spec.name, "failed": str(exc)})
    return measurements


def _spread(values: list[float]) -> dict[str, float | None]:
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return {"median": None, "min": None, "max": None}
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def summarise(measurements: list[dict[str, Any]], servers: Sequence[str]) -> list[dict[str, Any]]:
    """Median over rounds per (server, clients), and ratios paired with the echo's same round."""
    ok = [m for m in measurements if "failed" not in m]
    for m in ok:
        # The server's CPU per round trip: what the server costs, whatever else ran on the
        # machine (derived here, so earlier reports can be summarised again).
        cpu, count = m.get("server_cpu_s"), m.get("round_trips")
        m["server_cpu_us_per_round_trip"] = 1e6 * cpu / count if cpu is not None and count else None
    baseline = {(m["round"], m["clients"]): m for m in ok if m["server"] == BASELINE}
    summary = []
    for clients in sorted({m["clients"] for m in measurements}):
        for name in servers:
            rows = [m for m in ok if m["server"] == name and m["clients"] == clients]
            failed = [m for m in measurements if m["server"] == name and m["clients"] == clients
                      and "failed" in m]  # fmt: skip
            entry: dict[str, Any] = {"server": name, "clients": clients, "rounds": len(rows)}
            for key in ("rate", "p50_us", "p95_us", "p99_us", "server_cpu_percent",
                        "server_loop_cpu_percent", "server_cpu_us_per_round_trip",
                        "server_rss_peak_bytes", "loadgen_cpu_percent", "machine_cpu_percent",
                        "other_cpu_percent"):  # fmt: skip
                entry[key] = _spread([m[key] for m in rows if m.get(key) is not None])
            entry["errors"] = sum(m["errors"] for m in rows)
            entry["failed"] = [m["failed"] for m in failed]
            entry["bottleneck"] = sorted({m["bottleneck"] for m in rows})
            paired = [(m, baseline.get((m["round"], clients))) for m in rows]
            entry["rate_ratio"] = _spread(
                [m["rate"] / b["rate"] for m, b in paired if b and b["rate"]]
            )
            entry["p99_ratio"] = _spread(
                [m["p99_us"] / b["p99_us"] for m, b in paired if b and b.get("p99_us")
                 and m.get("p99_us") is not None]
            )  # fmt: skip
            entry["cpu_ratio"] = _spread(
                [m["server_cpu_us_per_round_trip"] / b["server_cpu_us_per_round_trip"]
                 for m, b in paired if b and b.get("server_cpu_us_per_round_trip")
                 and m.get("server_cpu_us_per_round_trip") is not None]
            )  # fmt: skip
            summary.append(entry)
    return summary


def _fmt(value: float | None, scale: float = 1.0, digits: int = 0) -> str:
    return "-" if value is None else f"{value / scale:,.{digits}f}"


def _ratio(spread: dict[str, float | None]) -> str:
    if spread["median"] is None:
        return "-"
    return f"{spread['median']:.2f} ({spread['min']:.2f}-{spread['max']:.2f})"


def format_table(summary: list[dict[str, Any]]) -> str:
    """The table printed at the end (medians over rounds; ratios: median (min-max))."""
    header = (
        f"{'clients':>7} {'server':<20} {'rt/s':>7} {'x echo (min-max)':>17} {'p50 ms':>8} "
        f"{'p95 ms':>8} {'p99 ms':>8} {'p99 x echo':>17} {'errors':>6} {'srv us/rt':>9} "
        f"{'x echo':>6} {'srv%':>4} {'loop%':>5} {'RSS MiB':>7} {'gen%':>4} {'bottleneck':<10}"
    )
    lines = [header, "-" * len(header)]
    for e in summary:
        if e["rounds"] == 0:
            lines.append(f"{e['clients']:>7} {e['server']:<20} failed: {e['failed'][:1]}")
            continue
        cpu_ratio = e["cpu_ratio"]["median"]
        lines.append(
            f"{e['clients']:>7} {e['server']:<20} {_fmt(e['rate']['median']):>7} "
            f"{_ratio(e['rate_ratio']):>17} {_fmt(e['p50_us']['median'], 1000, 2):>8} "
            f"{_fmt(e['p95_us']['median'], 1000, 2):>8} {_fmt(e['p99_us']['median'], 1000, 2):>8} "
            f"{_ratio(e['p99_ratio']):>17} {e['errors']:>6} "
            f"{_fmt(e['server_cpu_us_per_round_trip']['median']):>9} "
            f"{'-' if cpu_ratio is None else f'{cpu_ratio:.2f}':>6} "
            f"{_fmt(e['server_cpu_percent']['median']):>4} "
            f"{_fmt(e['server_loop_cpu_percent']['median']):>5} "
            f"{_fmt(e['server_rss_peak_bytes']['median'], 2**20, 1):>7} "
            f"{_fmt(e['loadgen_cpu_percent']['median']):>4} {','.join(e['bottleneck']):<10}"
        )
    return "\n".join(lines)


def plot(summary: list[dict[str, Any]], path: Path, title: str) -> None:
    """Throughput and p99 latency by client count, one line per server (median, min-max bars)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    for name in dict.fromkeys(e["server"] for e in summary):
        rows = [e for e in summary if e["server"] == name and e["rounds"]]
        if not rows:
            continue
        xs = [e["clients"] for e in rows]
        for axis, key, scale in ((left, "rate", 1.0), (right, "p99_us", 1000.0)):
            mid = [e[key]["median"] / scale for e in rows]
            low = [(e[key]["median"] - e[key]["min"]) / scale for e in rows]
            high = [(e[key]["max"] - e[key]["median"]) / scale for e in rows]
            axis.errorbar(xs, mid, yerr=[low, high], marker="o", capsize=3, label=name)
    left.set(xscale="log", xlabel="clients", ylabel="round trips per second",
             title="Throughput (median, min-max over rounds)")  # fmt: skip
    right.set(xscale="log", yscale="log", xlabel="clients", ylabel="p99 latency (ms)",
              title="p99 latency (median, min-max over rounds)")  # fmt: skip
    for axis in (left, right):
        axis.grid(True, which="both", alpha=0.3)
        axis.set_ylim(bottom=0 if axis is left else None)
    left.legend(fontsize="small")
    figure.suptitle(title, fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _machine() -> dict[str, Any]:
    from websockets.version import version as websockets_version

    info: dict[str, Any] = {
        "python": platform.python_version(),
        "websockets": websockets_version,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg(),
    }
    try:  # which chatbot was measured: the commit, and whether the tree had changes
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            cwd=HERE,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "chatbot"],
            capture_output=True,
            text=True,
            timeout=10,
            cwd=HERE.parent,
            check=True,
        ).stdout.strip()
        info["git"] = head + (" (chatbot/ modified)" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        info["git"] = None
    try:
        import psutil  # type: ignore[import-untyped]

        info["psutil"] = psutil.__version__
        info["memory_bytes"] = psutil.virtual_memory().total
    except ImportError:
        info["psutil"] = None
    return info


def _run_benchmark(args: argparse.Namespace, argv: Sequence[str] | None) -> dict[str, Any]:
    settings = _settings(args)
    raise_fd_limit()  # the servers and the load generator's workers inherit it
    command = "python benchmarks/run.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    started = time.monotonic()
    machine = _machine()
    measurements = run_rounds(settings, quiet=args.quiet)
    used = {c: settings["processes"] or auto_processes(c) for c in settings["clients"]}
    return {
        "schema": SCHEMA,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": command.strip(),
        "settings": settings | {"processes_used": used},
        "machine": machine,
        "servers": [
            {"name": s.name, "label": s.label, "mode": s.mode, "args": list(s.args)}
            for s in SERVERS
            if s.name in settings["servers"]
        ],
        "baseline": BASELINE,
        "elapsed_s": round(time.monotonic() - started, 1),
        "summary": [],
        "measurements": measurements,
    }


def _write(report: dict[str, Any], json_path: Path, plot_it: bool) -> None:
    report["summary"] = summarise(report["measurements"], report["settings"]["servers"])
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report, indent=1) + "\n")
    print(format_table(report["summary"]))
    print(
        f"\n{len(report['measurements'])} measurements in {report['elapsed_s']:.0f} s; "
        f"wrote {json_path}"
    )
    if plot_it:
        png_path = json_path.with_suffix(".png")
        machine = report["machine"]
        title = (
            f"{report['command']}  ({machine['cpu_count']} cores, Python {machine['python']}, "
            f"websockets {machine['websockets']})"
        )
        plot(report["summary"], png_path, title)
        print(f"wrote {png_path}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; return 0 if every measurement completed and every server answered."""
    args = build_parser().parse_args(None if argv is None else list(argv))
    if args.from_json is not None:
        report = json.loads(args.from_json.read_text())
        if report.get("schema") != SCHEMA:
            print(f"error: {args.from_json} has schema {report.get('schema')}, expected {SCHEMA}")
            return 2
        report["summarised"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        _write(report, args.from_json, not args.no_plot)
        return 0
    report = _run_benchmark(args, argv)
    json_path = args.out / ("smoke.json" if report["settings"]["smoke"] else "latest.json")
    _write(report, json_path, not args.no_plot)
    measurements = report["measurements"]
    failed = [m for m in measurements if "failed" in m or not m.get("server_alive", True)]
    for m in failed:
        reason = m.get("failed", "the server died")
        print(f"FAILED: {m['server']} at {m['clients']} clients: {reason}", file=sys.stderr)
    errors = sum(m.get("errors", 0) for m in measurements)
    if errors:
        print(f"warning: {errors} errors (see error_kinds in {json_path})", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
