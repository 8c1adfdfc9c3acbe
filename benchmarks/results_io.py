"""Where every benchmark script writes its results: ``<name>.json`` (the versioned envelope) and ``<name>.md``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from compressor.report.envelope import dumps, envelope


def write_results(out: Path, name: str, results: Any, markdown: str) -> None:
    """Write ``out/<name>.json`` and ``out/<name>.md`` and say so on stderr."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(dumps(envelope(f"benchmarks/{name}", results)))
    (out / f"{name}.md").write_text(markdown if markdown.endswith("\n") else markdown + "\n")
    print(f"wrote {out / (name + '.json')} and {out / (name + '.md')}", file=sys.stderr)
