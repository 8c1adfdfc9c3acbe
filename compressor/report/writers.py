"""Writing reports to files, the format chosen by the file's suffix; always atomic."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from compressor.errors import UsageError
from compressor.outputs import write_text_atomic
from compressor.report.envelope import dumps, envelope
from compressor.report.table import Table, to_markdown

REPORT_SUFFIXES = (".md", ".json")


def write_report(path: Path, command: str, result: dict[str, Any], tables: list[Table], heading: str) -> Path:
    """Write ``result`` as Markdown (``.md``) or the JSON envelope (``.json``)."""
    suffix = path.suffix.lower()
    if suffix == ".md":
        return write_text_atomic(path, to_markdown(tables, heading))
    if suffix == ".json":
        return write_text_atomic(path, dumps(envelope(command, result)))
    raise UsageError(f"cannot write a report to '{path}': use one of {', '.join(REPORT_SUFFIXES)}")
