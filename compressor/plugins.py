"""The plugin manager: loads built-ins and entry-point plugins and collects what they register.

A plugin that fails to import, or whose hook raises, is recorded with its error and skipped; the
rest keep working. ``compressor plugins`` shows the result.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pluggy

from compressor import hookspecs
from compressor.errors import PluginError

ENTRY_POINT_GROUP = "compressor.plugins"
BUILTIN_MODULES = (
    "compressor.builtin.onnx_plugin",
    "compressor.builtin.data_plugin",
    "compressor.builtin.search_plugin",
)
#: Kinds of objects plugins register, in the order ``compressor plugins`` lists them.
KINDS = ("loaders", "passes", "runners", "datasets", "metrics", "executors")


@dataclass
class PluginInfo:
    """What ``compressor plugins`` shows for one plugin."""

    name: str
    version: str
    source: str
    error: str | None = None
    registered: dict[str, list[str]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "source": self.source,
            "error": self.error,
            "registered": self.registered,
        }


@dataclass
class Registry:
    """Everything plugins registered, by kind and name, plus where each came from.

    Each kind is collected the first time it is asked for, so a command that only loads a model calls only
    the plugins' ``register_loaders`` hooks (``compressor check`` on an ONNX file stays fast).
    """

    plugins: list[PluginInfo] = field(default_factory=list)
    items: dict[str, dict[str, Any]] = field(default_factory=lambda: {k: {} for k in KINDS})
    owners: dict[tuple[str, str], str] = field(default_factory=dict)
    manager: pluggy.PluginManager | None = None
    collected: set[str] = field(default_factory=set)

    def kind(self, kind: str) -> dict[str, Any]:
        """The objects of one kind, collecting them from the plugins on first use."""
        if kind not in self.collected:
            self.collected.add(kind)
            _collect_kind(self, kind)
        return self.items[kind]

    def collect_all(self) -> Registry:
        for kind in KINDS:
            self.kind(kind)
        return self

    @property
    def loaders(self) -> dict[str, Any]:
        return self.kind("loaders")

    @property
    def passes(self) -> dict[str, Any]:
        return self.kind("passes")

    @property
    def runners(self) -> dict[str, Any]:
        return self.kind("runners")

    @property
    def datasets(self) -> dict[str, Any]:
        return self.kind("datasets")

    @property
    def metrics(self) -> dict[str, Any]:
        return self.kind("metrics")

    @property
    def executors(self) -> dict[str, Any]:
        return self.kind("executors")

    def add(self, kind: str, obj: Any, plugin: PluginInfo) -> None:
        name = getattr(obj, "name", None)
        if not isinstance(name, str) or not name:
            raise PluginError(f"plugin '{plugin.name}' registered a {kind[:-1]} without a name: {obj!r}")
        owner = self.owners.get((kind, name))
        if owner is not None:
            raise PluginError(f"plugin '{plugin.name}' registers {kind[:-1]} '{name}', already registered by '{owner}'")
        self.items[kind][name] = obj
        self.owners[(kind, name)] = plugin.name
        plugin.registered.setdefault(kind, []).append(name)

    def discard(self, plugin: PluginInfo) -> None:
        """Forget everything ``plugin`` registered: a plugin that failed part-way is skipped as a whole."""
        for kind, names in plugin.registered.items():
            for name in names:
                if self.owners.get((kind, name)) == plugin.name:
                    del self.items[kind][name]
                    del self.owners[(kind, name)]
        plugin.registered.clear()


def _new_manager() -> pluggy.PluginManager:
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    return manager


def _distribution_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _load_plugins(manager: pluggy.PluginManager) -> list[PluginInfo]:
    infos = []
    core_version = _distribution_version("compressor")
    for module_name in BUILTIN_MODULES:
        module = importlib.import_module(module_name)
        short = module_name.rsplit(".", 1)[-1].removesuffix("_plugin")
        manager.register(module, name=f"builtin:{short}")
        infos.append(PluginInfo(f"builtin:{short}", core_version, "built-in"))
    for entry_point in sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        dist = entry_point.dist.name if entry_point.dist else "unknown"
        version = entry_point.dist.version if entry_point.dist else "unknown"
        name = entry_point.name if all(i.name != entry_point.name for i in infos) else f"{entry_point.name}@{dist}"
        info = PluginInfo(name, version, f"{dist} ({entry_point.value})")
        infos.append(info)
        try:
            manager.register(entry_point.load(), name=name)
        except Exception as exc:  # a broken plugin must not break the others
            info.error = f"{type(exc).__name__}: {exc}"
    return infos


def _collect_kind(registry: Registry, kind: str) -> None:
    """Call every healthy plugin's ``register_<kind>`` hook; one that raises is dropped as a whole."""
    assert registry.manager is not None
    by_name = {info.name: info for info in registry.plugins}
    for impl in getattr(registry.manager.hook, f"register_{kind}").get_hookimpls():
        info = by_name[impl.plugin_name]
        if info.error:
            continue
        register: Callable[[Any], None] = functools.partial(registry.add, kind, plugin=info)
        try:
            impl.function(register=register)
        except Exception as exc:  # recorded and shown by `compressor plugins`
            info.error = f"register_{kind} failed: {type(exc).__name__}: {exc}"
            registry.discard(info)


@functools.cache
def get_registry() -> Registry:
    """Load every plugin once per process; what they register is collected per kind on first use."""
    manager = _new_manager()
    return Registry(plugins=_load_plugins(manager), manager=manager)


def add_plugin_commands(cli: Any) -> None:
    """Let each healthy plugin add its click commands to ``cli`` (once per group)."""
    if getattr(cli, "_compressor_plugin_commands", False):
        return
    cli._compressor_plugin_commands = True
    registry = get_registry()
    by_name = {info.name: info for info in registry.plugins}
    assert registry.manager is not None
    for impl in registry.manager.hook.register_commands.get_hookimpls():
        info = by_name[impl.plugin_name]
        if info.error:
            continue
        before = set(cli.commands)
        try:
            impl.function(cli=cli)
            info.registered["commands"] = sorted(set(cli.commands) - before)
        except Exception as exc:
            for name in set(cli.commands) - before:
                del cli.commands[name]
            info.error = f"register_commands failed: {type(exc).__name__}: {exc}"
            registry.discard(info)
