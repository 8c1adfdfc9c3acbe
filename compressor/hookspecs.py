"""The hooks a compressor plugin implements.

A plugin is a module (or object) exposed through the ``compressor.plugins`` entry-point group::

    [project.entry-points."compressor.plugins"]
    torch = "compressor_torch.plugin"

and implements any of the hooks below with ``@compressor.hookimpl``. Each ``register_*`` hook receives
a ``register`` callback; call it once per object. Registration must stay cheap: import heavy libraries
(torch, transformers, ...) inside the loader, pass or runner methods that need them, never at the top
of the plugin module. The core's own ONNX built-ins register through these same hooks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

PROJECT = "compressor"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_loaders(register: Callable[[Any], None]) -> None:
    """Register :class:`compressor.loaders.Loader` subclasses: they turn a path or reference into an Artifact."""


@hookspec
def register_passes(register: Callable[[Any], None]) -> None:
    """Register :class:`compressor.passes.Pass` subclasses: they turn an Artifact into a new Artifact."""


@hookspec
def register_runners(register: Callable[[Any], None]) -> None:
    """Register :class:`compressor.measure.runner.Runner` subclasses: they execute an artifact on a device."""


@hookspec
def register_datasets(register: Callable[[Any], None]) -> None:
    """Register :class:`compressor.data.DatasetReader` subclasses: they read calibration/evaluation data."""


@hookspec
def register_metrics(register: Callable[[Any], None]) -> None:
    """Register :class:`compressor.measure.quality.Metric` objects: named quality scores over outputs and labels."""


@hookspec
def register_executors(register: Callable[[Any], None]) -> None:
    """Register :class:`compressor.search.executors.Executor` subclasses: they build optimizer candidates."""


@hookspec
def register_commands(cli: Any) -> None:
    """Add click commands to the ``compressor`` group (``cli.add_command(...)``)."""
