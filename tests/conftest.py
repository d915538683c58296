"""Fixtures shared by every test package."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _isolated_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Keep replay-GPU state files and caches of one test away from every other test and from ~."""
    monkeypatch.setenv("ZEUS_STATE_DIR", str(tmp_path / "zeus-state"))
    monkeypatch.delenv("ZEUS_GPU", raising=False)
    yield


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A folder with a short path, for UNIX sockets (paths up to 107 bytes), that any user may
    traverse (processes run as another user reach sockets in it)."""
    path = Path(tempfile.mkdtemp(prefix="zeus-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)
