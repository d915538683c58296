"""The lease journal: every live lease, with each GPU's limit from before the lease, on disk.

Written whole on every change, atomically (`write_atomically`), so that a reader (the agent after a
crash or a reboot) finds the old or the new journal, never a torn one. A journal that cannot be read stops the agent: it alone says which limits
to restore, and guessing could leave a GPU throttled for good.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from zeus.errors import ZeusConfigError

VERSION = 1


class Journal:
    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> list[dict[str, Any]]:
        """The leases last written ([] when no journal exists yet)."""
        try:
            data = json.loads(self.path.read_text())
            if data.get("version") != VERSION or not isinstance(data.get("leases"), list):
                raise ValueError(f"expected version {VERSION} with a list of leases")
            leases: list[dict[str, Any]] = data["leases"]
            return leases
        except FileNotFoundError:
            return []
        except (OSError, ValueError, AttributeError) as e:
            raise ZeusConfigError(
                f"agent journal {self.path} is unreadable ({e}): it says which GPU power limits to "
                "restore; inspect it, then move it away to start without it"
            ) from None

    def save(self, leases: list[dict[str, Any]]) -> None:
        write_atomically(self.path, json.dumps({"version": VERSION, "leases": leases}, indent=1))


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so that a reader, even after a power cut, finds the old or the
    new content, never a torn one: a temporary file in the same folder, fsync, rename, fsync of the
    folder."""
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True, mode=0o750)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.stem}-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(text.encode())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself survives a power cut
    finally:
        os.close(dir_fd)
