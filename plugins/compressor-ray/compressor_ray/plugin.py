"""Registers the Ray executor. Cheap: ray is imported only when a search uses ``--executor ray``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from compressor import hookimpl


@hookimpl
def register_executors(register: Callable[[Any], None]) -> None:
    from compressor_ray.executor import RayExecutor

    register(RayExecutor)
