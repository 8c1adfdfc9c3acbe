"""Entry point of the torch plugin: registers loaders, the runner, passes and commands.

Registration imports only this package's light modules (pydantic configs, click commands); torch,
torch-pruning and safetensors are imported inside ``load``, ``open`` and ``run``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from compressor import hookimpl


@hookimpl
def register_loaders(register: Callable[[Any], None]) -> None:
    from compressor_torch.loader import TorchLoader

    register(TorchLoader)


@hookimpl
def register_runners(register: Callable[[Any], None]) -> None:
    from compressor_torch.runner import TorchRunner

    register(TorchRunner)


@hookimpl
def register_passes(register: Callable[[Any], None]) -> None:
    from compressor_torch.export import ConvertOnnx
    from compressor_torch.prune import MagnitudePrune, NMPrune, StructuredPrune
    from compressor_torch.train import Distill, Finetune

    for pass_cls in (ConvertOnnx, MagnitudePrune, StructuredPrune, NMPrune, Finetune, Distill):
        register(pass_cls)


@hookimpl
def register_commands(cli: Any) -> None:
    from compressor_torch.commands import distill, export, prune

    for command in (export, prune, distill):
        cli.add_command(command)
