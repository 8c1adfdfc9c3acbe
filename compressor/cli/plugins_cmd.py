"""``compressor plugins``: each plugin, its version, what it registered, and load errors."""

from __future__ import annotations

import click

from compressor.cli import console
from compressor.cli.options import json_option
from compressor.plugins import KINDS, add_plugin_commands, get_registry
from compressor.report.table import Table


@click.command()
@click.option("--passes", "show_passes", is_flag=True, help="Also list every pass with its formats and summary.")
@json_option
def plugins(show_passes: bool, as_json: bool) -> int:
    """List installed plugins, their versions and what each registered."""
    root = click.get_current_context().find_root().command
    if isinstance(root, click.Group):
        add_plugin_commands(root)  # commands load on demand; list what each plugin adds
    registry = get_registry().collect_all()
    if as_json:
        passes = {
            name: {
                "summary": cls.summary,
                "input_formats": list(cls.input_formats),
                "output_format": cls.output_format,
                "options": sorted(cls.Config.model_fields),
            }
            for name, cls in sorted(registry.passes.items())
        }
        console.print_json("plugins", {"plugins": [p.to_dict() for p in registry.plugins], "passes": passes})
        return 0
    table = Table("Plugins", ["plugin", "version", "source", *KINDS, "commands", "status"])
    for info in registry.plugins:
        cells = [", ".join(info.registered.get(kind, [])) or "-" for kind in (*KINDS, "commands")]
        status = f"FAILED: {info.error}" if info.error else "ok"
        table.add([info.name, info.version, info.source, *cells, status], style="bad" if info.error else "")
    tables = [table]
    if show_passes:
        detail = Table("Passes", ["pass", "formats", "summary"])
        for name, cls in sorted(registry.passes.items()):
            detail.add([name, f"{','.join(cls.input_formats)} -> {cls.output_format}", cls.summary])
        tables.append(detail)
    console.print_tables(tables)
    return 0
