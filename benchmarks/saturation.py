"""Is the load generator fast enough? ``python benchmarks/saturation.py``.

Loads one server (the raw echo by default) with the same client count from 1, 2, 3...
load generator processes, with each kind of client, and prints for each: the round trips per
second, the server's event-loop CPU, and the load generator's CPU per round trip and busiest
process. The load generator is not the bottleneck when adding a process no longer raises the
throughput while the server's loop is near 100 % and every worker has CPU to spare.

Example::

    python benchmarks/saturation.py --server echo --clients 100 --processes 1,2,3 --duration 3
"""

from __future__ import annotations

import argparse
import os
import sys

from loadgen import LoadSpec, raise_fd_limit, run_load
from servers import SERVERS, start_servers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python benchmarks/saturation.py")
    parser.add_argument("--server", default="echo", choices=[s.name for s in SERVERS])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--processes", default="1,2,3")
    parser.add_argument("--clients-kinds", default="picows,websockets")
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    args = parser.parse_args(argv)
    raise_fd_limit()
    spec = next(s for s in SERVERS if s.name == args.server)
    print(
        f"{args.server}, {args.clients} clients, {args.duration:g} s each; load average "
        f"{os.getloadavg()[0]:.2f} at start"
    )
    print(
        f"{'client':<10} {'procs':>5} {'rt/s':>8} {'srv loop%':>9} {'srv us/rt':>9} "
        f"{'gen%':>5} {'gen us/rt':>9} {'bottleneck':<10} {'load':>5}"
    )
    for kind in args.clients_kinds.split(","):
        for processes in (int(p) for p in args.processes.split(",")):
            with start_servers([spec]) as running:  # fresh each time, as run.py does
                server = running[spec.name]
                load = LoadSpec(
                    server.url,
                    args.clients,
                    duration=args.duration,
                    warmup=args.warmup,
                    mode=spec.mode,
                    processes=processes,
                    expect_echo=spec.expect_echo,
                    client=kind,
                )
                r = run_load(load, server_pid=server.pid, progress=False)
            rts = max(1, r.round_trips)
            srv_us = 1e6 * (r.server_cpu_s or 0) / rts
            gen_us = 1e4 * r.loadgen_cpu_percent * r.duration / rts
            print(
                f"{kind:<10} {processes:>5} {r.rate:>8,.0f} {r.server_loop_cpu_percent or 0:>9.0f} "
                f"{srv_us:>9.1f} {r.loadgen_cpu_percent:>5.0f} {gen_us:>9.1f} "
                f"{r.bottleneck:<10} {os.getloadavg()[0]:>5.2f}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
