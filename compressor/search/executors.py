"""Executors build optimizer candidates: here, in local worker processes, or (plugins) on a cluster.

Only building and quality evaluation run in executors. Latency is measured afterwards by the optimizer
itself, one model at a time, with nothing else running.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
from collections.abc import Iterator
from typing import ClassVar

from compressor.errors import UsageError, unknown_name_error
from compressor.measure.runner import default_threads
from compressor.plugins import get_registry
from compressor.search.worker import BuildResult, BuildTask, build_candidate


class Executor:
    """Base class: ``run(tasks)`` yields each task's result as it completes."""

    name: ClassVar[str]
    summary: ClassVar[str] = ""

    def __init__(self, jobs: int = 1, address: str | None = None) -> None:
        self.jobs = max(1, jobs)
        self.address = address

    def threads_per_job(self) -> int:
        """Runtime threads each parallel build may use, so builds do not oversubscribe the CPUs."""
        return max(1, default_threads() // self.jobs)

    def run(self, tasks: list[BuildTask]) -> Iterator[BuildResult]:
        raise NotImplementedError

    def close(self) -> None:
        """Release workers or connections."""


class LocalExecutor(Executor):
    name = "local"
    summary = "this machine: in-process with --jobs 1, else that many worker processes"

    def __init__(self, jobs: int = 1, address: str | None = None) -> None:
        if address:
            raise UsageError("--executor local takes no address")
        super().__init__(jobs, address)
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None

    def run(self, tasks: list[BuildTask]) -> Iterator[BuildResult]:
        if self.jobs == 1:
            for task in tasks:
                yield build_candidate(task)
            return
        if self._pool is None:
            context = multiprocessing.get_context("spawn")
            self._pool = concurrent.futures.ProcessPoolExecutor(max_workers=self.jobs, mp_context=context)
        futures = [self._pool.submit(build_candidate, task) for task in tasks]
        try:
            for future in concurrent.futures.as_completed(futures):
                yield future.result()
        finally:
            for future in futures:
                future.cancel()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def get_executor(name: str, jobs: int = 1, address: str | None = None) -> Executor:
    executors = get_registry().executors
    if name not in executors:
        raise unknown_name_error("executor", name, executors, UsageError)
    return executors[name](jobs=jobs, address=address)
