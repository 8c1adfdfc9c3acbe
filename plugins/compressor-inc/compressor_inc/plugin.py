"""Entry point of the INC plugin: registers the passes, the ``inc-woq`` loader and runner.

Registration imports only this package's light modules (pydantic configs); torch and neural_compressor are
imported inside ``run``, ``load`` and ``open``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from compressor import hookimpl


@hookimpl
def register_passes(register: Callable[[Any], None]) -> None:
    from compressor_inc.autotune import IncAutotune
    from compressor_inc.static import IncStaticQuantize
    from compressor_inc.weight_only import IncWeightOnly

    for pass_cls in (IncStaticQuantize, IncWeightOnly, IncAutotune):
        register(pass_cls)


@hookimpl
def register_loaders(register: Callable[[Any], None]) -> None:
    from compressor_inc.woq_runner import WoqLoader

    register(WoqLoader)


@hookimpl
def register_runners(register: Callable[[Any], None]) -> None:
    from compressor_inc.woq_runner import WoqRunner

    register(WoqRunner)
