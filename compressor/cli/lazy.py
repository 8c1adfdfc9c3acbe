"""A click group whose commands are imported when used, so ``compressor check`` loads only what it needs."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import click


class LazyGroup(click.Group):
    """``lazy_commands`` maps a built-in command's name to ``"module:attribute"``, imported on first use.

    ``on_demand(group)`` runs once, the first time a command that is not built in is looked up or the
    commands are listed (``--help``): the CLI adds plugin commands there, so running a built-in command or
    ``--version`` does not load every plugin. Built-in names win over commands added under the same name.
    """

    def __init__(
        self,
        *args: Any,
        lazy_commands: dict[str, str] | None = None,
        on_demand: Callable[[click.Group], None] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands = dict(lazy_commands or {})
        self.on_demand = on_demand
        self._demanded = False
        self._imported: dict[str, click.Command] = {}

    def load_on_demand(self) -> None:
        if self.on_demand is not None and not self._demanded:
            self._demanded = True
            self.on_demand(self)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self.load_on_demand()
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.lazy_commands:
            self.load_on_demand()
            return super().get_command(ctx, cmd_name)
        if cmd_name not in self._imported:
            module_name, attribute = self.lazy_commands[cmd_name].split(":")
            self._imported[cmd_name] = getattr(importlib.import_module(module_name), attribute)
        return self._imported[cmd_name]
