"""The "what loading can execute" table of docs/security.md, generated from the plugin registry.

    .venv/bin/python tests/security/security_table.py           # print the table
    .venv/bin/python tests/security/security_table.py --write   # replace it in docs/security.md

Every registered loader and dataset reader is one row: its name, the plugin that registers it, what it reads
(``cls.summary``) and what loading can execute (``cls.safety``). tests/security/test_security_docs.py fails
when a row of the installed plugins is missing from the document or differs from it.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "security.md"
BEGIN = "<!-- begin generated table: .venv/bin/python tests/security/security_table.py --write -->"
END = "<!-- end generated table -->"
HEADER = ["| kind | name | plugin | reads | what loading can execute |", "|---|---|---|---|---|"]


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def rows() -> list[str]:
    """One Markdown row per registered loader and dataset reader, loaders first, each sorted by name."""
    from compressor.plugins import get_registry

    registry = get_registry()
    lines = []
    for kind, label in (("loaders", "loader"), ("datasets", "dataset reader")):
        for name, cls in sorted(getattr(registry, kind).items()):
            owner = registry.owners.get((kind, name), "?")
            lines.append(f"| {label} | `{name}` | {owner} | {_cell(cls.summary)} | {_cell(cls.safety)} |")
    return lines


def table() -> str:
    return "\n".join([*HEADER, *rows()])


def write(doc: Path = DOC) -> None:
    text = doc.read_text()
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    if not rest:
        raise SystemExit(f"{doc} has no '{BEGIN}' marker")
    doc.write_text(f"{head}{BEGIN}\n{table()}\n{END}{tail}")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    if "--write" in sys.argv[1:]:
        write()
    else:
        print(table())
