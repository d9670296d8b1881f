"""The server under load, seen from outside: its CPU time and resident memory, through psutil."""

from __future__ import annotations

import contextlib
from typing import Any

__all__ = ["REQUIREMENT", "ProbeError", "ServerProbe"]

REQUIREMENT = "psutil>=5.9"
"""The requirements line the benchmarks need (psutil is not a dependency of the package)."""


class ProbeError(Exception):
    """The server cannot be measured: psutil is missing, or the process is gone."""


class ServerProbe:
    """CPU and memory of a server process (its children included), through psutil.

    Args:
        pid: the server's process ID; ``None`` makes a probe that measures nothing.

    Raises:
        ProbeError: psutil is not installed, or no process has that ID.

    Example::

        probe = ServerProbe(server.pid)
        before = probe.cpu()
        ...  # load it
        after = probe.cpu()
    """

    def __init__(self, pid: int | None) -> None:
        self.process: Any = None
        self.rss_peak = 0
        if pid is None:
            return
        try:
            import psutil  # type: ignore[import-untyped]
        except ImportError as exc:
            raise ProbeError(
                f"measuring the server needs psutil: pip install '{REQUIREMENT}', "
                "or leave out the server's PID"
            ) from exc
        self._psutil: Any = psutil
        try:
            self.process = psutil.Process(pid)
        except psutil.Error as exc:
            raise ProbeError(f"cannot measure process {pid}: {exc}") from exc

    def _family(self) -> list[Any]:
        family = [self.process]
        with contextlib.suppress(self._psutil.Error):
            family += self.process.children(recursive=True)
        return family

    def cpu(self) -> tuple[float, float] | None:
        """CPU seconds so far: the server (all processes, all threads), and its main thread.

        The main thread is where the event loop runs: near one CPU second per second, the server
        cannot go faster, whatever the machine has left. ``None`` without a PID.
        """
        if self.process is None:
            return None
        total = 0.0
        for process in self._family():
            with contextlib.suppress(self._psutil.Error):
                times = process.cpu_times()
                total += times.user + times.system
        loop = 0.0
        with contextlib.suppress(self._psutil.Error, AttributeError):
            for thread in self.process.threads():  # Linux: the main thread's id is the PID
                if thread.id == self.process.pid:
                    loop = thread.user_time + thread.system_time
        return total, loop

    def rss(self) -> int | None:
        """Resident memory in bytes (all the server's processes); updates :attr:`rss_peak`."""
        if self.process is None:
            return None
        total = 0
        for process in self._family():
            with contextlib.suppress(self._psutil.Error):
                total += process.memory_info().rss
        self.rss_peak = max(self.rss_peak, total)
        return total

    def machine_busy(self) -> float | None:
        """Busy CPU seconds of the whole machine so far, all cores (any process's work)."""
        if self.process is None:
            return None
        times = self._psutil.cpu_times()
        return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))
