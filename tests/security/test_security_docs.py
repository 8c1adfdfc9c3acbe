"""docs/security.md and docs/reliability.md cannot go stale: every registered loader and dataset reader is in the
security table as the registry describes it, and every test the documents cite exists."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.security.security_table import BEGIN, DOC, END, rows
from tests.test_bad_input import ALL_CASES

DOCS = [DOC, ROOT / "docs" / "reliability.md"]
#: `tests/path/file.py::test_name` (optionally `[param]`), as the documents cite tests.
CITATION = re.compile(r"`(tests/[\w/]+\.py)::(\w+)(?:\[([^\]`]*)\])?`")


def test_every_loader_and_dataset_reader_is_in_the_security_table() -> None:
    text = DOC.read_text()
    assert BEGIN in text and END in text
    table = text.split(BEGIN, 1)[1].split(END, 1)[0]
    missing = [row for row in rows() if row not in table]
    assert not missing, (
        "docs/security.md is stale; run `.venv/bin/python tests/security/security_table.py --write`:\n"
        + "\n".join(missing)
    )


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_cited_test_exists(doc: Path) -> None:
    citations = CITATION.findall(doc.read_text())
    assert len(citations) >= 10, f"{doc.name} cites too few tests"
    defined: dict[str, set[str]] = {}
    for file, name, param in citations:
        path = ROOT / file
        assert path.is_file(), f"{doc.name} cites {file}, which does not exist"
        if file not in defined:
            tree = ast.parse(path.read_text())
            defined[file] = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
        assert name in defined[file], f"{doc.name} cites {file}::{name}, which does not exist"
        if param:
            known = {c.id for c in ALL_CASES} if file == "tests/test_bad_input.py" else None
            found = param in known if known is not None else param in path.read_text()
            assert found, f"{doc.name} cites {file}::{name}[{param}], which does not exist"
