"""``compressor cache info|clear``: the optimizer's result cache."""

from __future__ import annotations

from pathlib import Path

import click

from compressor.cache import ResultCache, default_cache_dir
from compressor.cli import console
from compressor.cli.options import json_option
from compressor.parsing import format_size
from compressor.report.table import Table

cache_dir_option = click.option(
    "--cache-dir", type=click.Path(path_type=Path), default=None,
    help="The cache (default: $COMPRESSOR_CACHE_DIR or ~/.cache/compressor).",
)  # fmt: skip


@click.group()
def cache() -> None:
    """Inspect or clear the result cache (pass outputs and trial measurements)."""


def _show(title: str, info: dict[str, object], command: str, as_json: bool) -> int:
    if as_json:
        console.print_json(command, info)
        return 0
    table = Table(title, ["", "value"])
    table.add(["path", str(info["path"])])
    table.add(["pass results", str(info["pass_results"])])
    table.add(["trial measurements", str(info["trials"])])
    table.add(["size", format_size(int(info["size_bytes"]))])  # type: ignore[call-overload]
    console.print_tables([table])
    return 0


@cache.command()
@cache_dir_option
@json_option
def info(cache_dir: Path | None, as_json: bool) -> int:
    """Where the cache is, what it holds and its size."""
    return _show("Cache", ResultCache(cache_dir or default_cache_dir()).info(), "cache info", as_json)


@cache.command()
@cache_dir_option
@json_option
def clear(cache_dir: Path | None, as_json: bool) -> int:
    """Delete every cached result."""
    return _show("Cleared", ResultCache(cache_dir or default_cache_dir()).clear(), "cache clear", as_json)
