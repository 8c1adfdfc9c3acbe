"""Peak memory: the resident set size of this process, sampled while a model is opened and run."""

from __future__ import annotations

import threading
from types import TracebackType


class PeakMemory:
    """Context manager sampling RSS every ``interval`` seconds; ``peak`` and ``delta`` in bytes."""

    def __init__(self, interval: float = 0.002) -> None:
        self.interval = interval
        self.baseline = 0
        self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        import psutil  # imported when measuring, not at start-up (the gate's size check needs none)

        self._process = psutil.Process()

    @property
    def delta(self) -> int:
        """Growth over the RSS at entry: what opening and running the model cost."""
        return max(0, self.peak - self.baseline)

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, self._process.memory_info().rss)

    def __enter__(self) -> PeakMemory:
        self.baseline = self.peak = self._process.memory_info().rss
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak = max(self.peak, self._process.memory_info().rss)
