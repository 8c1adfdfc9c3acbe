"""Payloads for the malicious-input corpus: each one leaves a marker file behind if its code ever runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any


class PickleMarker:
    """Unpickling this writes ``marker``: proof that a pickle ran code."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (exec, (f"open({self.marker!r}, 'w').write('pwned')",))


class SkopsMarker:
    """A type skops does not trust: building it from a .skops file (``__setstate__``) writes its marker."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __setstate__(self, state: dict[str, Any]) -> None:
        Path(state["marker"]).write_text("pwned")
        self.__dict__.update(state)
