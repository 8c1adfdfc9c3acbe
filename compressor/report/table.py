"""A plain table (title, columns, rows of strings) that the CLI draws with rich and reports render."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    #: Lines printed under the table: environment, caveats.
    notes: list[str] = field(default_factory=list)
    #: Per-row style hints for terminals: "good", "bad" or "" (Markdown ignores them).
    styles: list[str] = field(default_factory=list)

    def add(self, row: list[str], style: str = "") -> None:
        self.rows.append(row)
        self.styles.append(style)


def to_markdown(tables: list[Table], heading: str | None = None) -> str:
    """GitHub-flavoured Markdown, suited to a pull-request comment."""
    parts = [f"## {heading}\n"] if heading else []
    for table in tables:
        parts.append(f"### {table.title}\n")
        parts.append("| " + " | ".join(_escape(c) for c in table.columns) + " |")
        parts.append("|" + "|".join("---" if i == 0 else "---:" for i in range(len(table.columns))) + "|")
        parts.extend("| " + " | ".join(_escape(c) for c in row) + " |" for row in table.rows)
        parts.append("")
        parts.extend(f"- {_escape(note)}" for note in table.notes)
        if table.notes:
            parts.append("")
    return "\n".join(parts).rstrip() + "\n"


def _escape(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")
