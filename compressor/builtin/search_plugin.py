"""Built-in plugin: the local executor for the optimizer (in-process, or worker processes)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from compressor.hookspecs import hookimpl


@hookimpl
def register_executors(register: Callable[[Any], None]) -> None:
    from compressor.search.executors import LocalExecutor

    register(LocalExecutor)
