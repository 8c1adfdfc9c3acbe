"""Writing reports to files, the format chosen by the file's suffix; always atomic."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from compressor.errors import OutputPathError, UsageError
from compressor.outputs import check_output_path, write_text_atomic
from compressor.report.envelope import dumps, envelope
from compressor.report.table import Table, to_markdown

REPORT_SUFFIXES = (".md", ".json")


def check_report_path(path: Path, suffixes: tuple[str, ...] = REPORT_SUFFIXES) -> Path:
    """Refuse an unsupported report suffix or an unusable path before any work is done."""
    if path.suffix.lower() not in suffixes:
        raise UsageError(f"cannot write a report to '{path}': use one of {', '.join(suffixes)}")
    if path.is_dir():
        raise OutputPathError(f"cannot write a report to '{path}': it is a folder")
    return check_output_path(path, [])


def write_report(
    path: Path,
    command: str,
    result: dict[str, Any],
    tables: list[Table],
    heading: str,
    html: Callable[[Path], None] | None = None,
) -> Path:
    """Write ``result`` as Markdown (``.md``), the JSON envelope (``.json``) or, given ``html``, a page."""
    suffix = check_report_path(path, (*REPORT_SUFFIXES, ".html") if html else REPORT_SUFFIXES).suffix.lower()
    if suffix == ".md":
        return write_text_atomic(path, to_markdown(tables, heading))
    if suffix == ".html" and html is not None:
        html(path)
        return path
    return write_text_atomic(path, dumps(envelope(command, result)))
