"""Every optimizer test gets its own result cache; helpers live in search_helpers.py."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own result cache ($COMPRESSOR_CACHE_DIR), never the user's."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("COMPRESSOR_CACHE_DIR", str(cache))
    return cache
