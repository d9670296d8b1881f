"""Latencies in a log-linear histogram: mergeable across processes, bounded in size."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["LatencyHistogram"]


class LatencyHistogram:
    """Latencies in microseconds, in log-linear buckets (HDR-like): mergeable, bounded in size.

    Values below 256 us are kept exactly; above, each power of two is split into 128 buckets, so a
    percentile is at most 0.4 % off (the middle of a bucket 0.8 % wide). Ten minutes of
    latencies fit in a few thousand buckets however many round trips there were.

    Example::

        histogram = LatencyHistogram()
        histogram.record(1234)
        histogram.percentile(99)  # 1234 (within 0.4 %)
    """

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.total = 0
        self.sum = 0
        self.min = 0
        self.max = 0

    @staticmethod
    def _key(value: int) -> int:
        if value < 256:
            return value
        shift = value.bit_length() - 8
        return (shift << 8) | (value >> shift)

    @staticmethod
    def _middle(key: int) -> float:
        shift, mantissa = key >> 8, key & 0xFF
        if shift == 0:
            return float(mantissa)
        return (mantissa << shift) + ((1 << shift) - 1) / 2

    def record(self, microseconds: int) -> None:
        """Count one latency (negative values count as 0)."""
        value = max(0, microseconds)
        key = self._key(value)
        self.counts[key] = self.counts.get(key, 0) + 1
        if self.total == 0 or value < self.min:
            self.min = value
        self.max = max(self.max, value)
        self.total += 1
        self.sum += value

    def merge(self, other: LatencyHistogram) -> None:
        """Add every latency counted by ``other``."""
        if other.total == 0:
            return
        for key, count in other.counts.items():
            self.counts[key] = self.counts.get(key, 0) + count
        self.min = other.min if self.total == 0 else min(self.min, other.min)
        self.max = max(self.max, other.max)
        self.total += other.total
        self.sum += other.sum

    def percentile(self, percent: float) -> float:
        """The latency (us) that ``percent`` % of round trips did not exceed; NaN if empty."""
        if self.total == 0:
            return math.nan
        rank = max(1, math.ceil(self.total * percent / 100))
        seen = 0
        for key in sorted(self.counts):
            seen += self.counts[key]
            if seen >= rank:
                return min(max(self._middle(key), self.min), self.max)
        return float(self.max)

    @property
    def mean(self) -> float:
        """The mean latency (us); NaN if empty."""
        return self.sum / self.total if self.total else math.nan

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form, read back by :meth:`from_dict`."""
        return {
            "total": self.total,
            "sum": self.sum,
            "min": self.min,
            "max": self.max,
            "buckets": sorted(self.counts.items()),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LatencyHistogram:
        """Rebuild a histogram written by :meth:`to_dict`."""
        histogram = cls()
        histogram.counts = {int(key): int(count) for key, count in data["buckets"]}
        histogram.total, histogram.sum = int(data["total"]), int(data["sum"])
        histogram.min, histogram.max = int(data["min"]), int(data["max"])
        return histogram
