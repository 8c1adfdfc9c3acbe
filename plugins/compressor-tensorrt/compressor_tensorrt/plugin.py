"""Registers the ``trt-check`` and ``trt-build`` commands. Nothing heavy is imported here."""

from __future__ import annotations

from typing import Any

from compressor import hookimpl


@hookimpl
def register_commands(cli: Any) -> None:
    from compressor_tensorrt.commands import trt_build, trt_check

    cli.add_command(trt_check)
    cli.add_command(trt_build)
