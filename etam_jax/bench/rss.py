"""Host memory of this process: the current resident set and a sampled peak.

Sampling only when a frame is yielded misses the transient buffers of the frame
being computed (XLA's large CPU buffers are mmapped and given back, so RSS
swings by hundreds of MiB within a frame at 1024 px); `RssSampler` polls from
a thread while the work runs, so a short and a long video are compared by
their true peaks.
"""

from __future__ import annotations

import os
import threading

_PAGE_MB = os.sysconf("SC_PAGE_SIZE") / 2**20


def rss_mb() -> float:
    """Current resident set size of this process in MiB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE_MB


class RssSampler:
    """Context manager polling `rss_mb` every ``interval_s`` from a daemon thread.

    Attributes:
        peak_mb: the largest RSS seen between entry and exit.
    """

    def __init__(self, interval_s: float = 0.005):
        self.interval_s = interval_s
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while True:
            self.peak_mb = max(self.peak_mb, rss_mb())
            if self._stop.wait(self.interval_s):
                return

    def __enter__(self) -> RssSampler:
        self.peak_mb = rss_mb()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, rss_mb())
