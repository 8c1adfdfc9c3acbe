"""What a measurement ran on: CPU, threads, and library versions (read without importing them)."""

from __future__ import annotations

import importlib.metadata
import platform
from functools import cache
from typing import Any

CORE_LIBRARIES = ("compressor", "numpy", "onnx", "onnxruntime")


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


@cache
def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(threads: int, device: str = "cpu", libraries: tuple[str, ...] = ()) -> dict[str, Any]:
    """The environment record every result carries."""
    import psutil  # imported when measuring, not at start-up

    versions = {name: _version(name) for name in (*CORE_LIBRARIES, *libraries)}
    return {
        "cpu": cpu_name(),
        "logical_cpus": psutil.cpu_count(logical=True),
        "physical_cpus": psutil.cpu_count(logical=False),
        "threads": threads,
        "device": device,
        "memory_gb": round(psutil.virtual_memory().total / 1e9, 1),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "versions": {k: v for k, v in versions.items() if v},
    }
