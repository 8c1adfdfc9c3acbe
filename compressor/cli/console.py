"""Terminal output: tables, messages and progress bars (stderr), JSON (stdout)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table as RichTable

from compressor.report.envelope import dumps, envelope
from compressor.report.table import Table

#: Width when output is not a terminal (CI logs, pipes): wide enough that tables are not cut.
PIPE_WIDTH = 400


def _console(stderr: bool) -> Console:
    probe = Console(stderr=stderr)
    return Console(stderr=stderr, soft_wrap=False, width=None if probe.is_terminal else PIPE_WIDTH)


out = _console(stderr=False)
err = _console(stderr=True)

_STYLES = {"good": "green", "bad": "red", "": ""}


def print_tables(tables: list[Table]) -> None:
    for table in tables:
        rich_table = RichTable(title=escape(table.title), title_justify="left", header_style="bold")
        for index, column in enumerate(table.columns):
            cells = [row[index] for row in table.rows if index < len(row)]
            justify = "right" if index and all(_is_number(c) for c in cells) else "left"
            rich_table.add_column(escape(column), justify=justify, no_wrap=index == 0)
        for row, style in zip(table.rows, table.styles or [""] * len(table.rows), strict=False):
            rich_table.add_row(*(escape(c) for c in row), style=_STYLES.get(style, style))
        out.print(rich_table)
        for note in table.notes:
            out.print(f"  {note}", style="dim", highlight=False, markup=False)


def _is_number(cell: str) -> bool:
    """Numbers, ratios and sizes ("0.27x", "163.7 KB", "+0.5 pt", "-") are right-aligned; text is not."""
    text = cell.strip().lstrip("+-±")
    return not text or text[0].isdigit()


def print_json(command: str, result: Any, exit_code: int = 0) -> None:
    click.echo(dumps(envelope(command, result, exit_code)), nl=False)


def info(message: str) -> None:
    err.print(message, style="dim", highlight=False, markup=False)


def warn(message: str) -> None:
    err.print(f"warning: {message}", style="yellow", highlight=False, markup=False)


@contextlib.contextmanager
def progress(description: str, total: float | None) -> Iterator[Callable[[float], None]]:
    """A rich progress bar on stderr; yields ``advance(amount)``."""
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn  # not at start-up

    columns = [TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn()]
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda amount=1.0: bar.advance(task, amount)
