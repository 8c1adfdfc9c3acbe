"""Writing reports to files, the format chosen by the file's suffix; always atomic."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from compressor.errors import OutputPathError, UsageError
from compressor.outputs import check_output_path, write_text_atomic
from compressor.report.envelope import dumps, envelope
from compressor.report.table import Table, to_markdown

REPORT_SUFFIXES = (".md", ".json")


def check_report_path(path: Path) -> Path:
    """Refuse an unsupported report suffix before any work is done."""
    if path.suffix.lower() not in REPORT_SUFFIXES:
        raise UsageError(f"cannot write a report to '{path}': use one of {', '.join(REPORT_SUFFIXES)}")
    if path.is_dir():
        raise OutputPathError(f"cannot write a report to '{path}': it is a folder")
    return check_output_path(path, [])


def write_report(path: Path, command: str, result: dict[str, Any], tables: list[Table], heading: str) -> Path:
    """Write ``result`` as Markdown (``.md``) or the JSON envelope (``.json``)."""
    if check_report_path(path).suffix.lower() == ".md":
        return write_text_atomic(path, to_markdown(tables, heading))
    return write_text_atomic(path, dumps(envelope(command, result)))
