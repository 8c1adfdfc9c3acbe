"""Entry point of the transformers plugin: registers the loader, the runner, the passes and the text reader.

Registration imports only this package's light modules (pydantic configs, json); transformers, optimum,
torch and sentence-transformers are imported inside ``load``, ``open`` and ``run``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from compressor import hookimpl


@hookimpl
def register_loaders(register: Callable[[Any], None]) -> None:
    from compressor_transformers.loader import HfLoader

    register(HfLoader)


@hookimpl
def register_runners(register: Callable[[Any], None]) -> None:
    from compressor_transformers.runner import HfRunner

    register(HfRunner)


@hookimpl
def register_passes(register: Callable[[Any], None]) -> None:
    from compressor_transformers.export import HfToOnnx
    from compressor_transformers.fusion import TransformerFusion
    from compressor_transformers.masked_softmax import MaskedSoftmax

    for pass_cls in (HfToOnnx, TransformerFusion, MaskedSoftmax):
        register(pass_cls)


@hookimpl
def register_datasets(register: Callable[[Any], None]) -> None:
    from compressor_transformers.text_data import TextReader

    register(TextReader)
