"""Fixtures shared by every test package."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _isolated_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Keep replay-GPU state files and caches of one test away from every other test and from ~."""
    monkeypatch.setenv("ZEUS_STATE_DIR", str(tmp_path / "zeus-state"))
    monkeypatch.delenv("ZEUS_GPU", raising=False)
    yield
