"""Every shell block of the README and docs/ runs as written, unless it says what it needs.

The rules are in doc_blocks.py (and docs/development.md). A page's blocks share one scratch folder
and run in order: running block N first runs the blocks before it on the same page.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.docs.doc_blocks import PAGES, ROOT, SERVER_TITLE, Block, page_blocks, shell_blocks

pytestmark = pytest.mark.slow
BLOCK_TIMEOUT_S = 600
LINKED = ("examples", "bench")


class Page:
    """A page's scratch folder and how far its blocks have run."""

    def __init__(self, page: Path, folder: Path) -> None:
        self.blocks = page_blocks(page)
        self.folder = folder
        self.done = 0
        for name in LINKED:
            (folder / name).symlink_to(ROOT / name)
        (folder / ".venv").symlink_to(Path(sys.executable).parents[1])

    def run_through(self, target: Block) -> None:
        """Run every block before ``target`` not run yet (they must pass), then ``target``."""
        for index, block in enumerate(self.blocks):
            if index < self.done:
                continue
            self.done = index + 1
            if block.file_name is not None:
                (self.folder / block.file_name).write_text(block.text + "\n")
            elif block.lang in ("bash", "console") and block.needs is None:
                _run(block, self.folder)
            if block == target:
                return


def _env(folder: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "ZEUS_GPU"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["ZEUS_STATE_DIR"] = str(folder / ".zeus-state")
    env["VIRTUAL_ENV"] = str(Path(sys.executable).parents[1])
    env.pop("COLUMNS", None)
    return env


def _shell(script: str, folder: Path, block: Block) -> str:
    proc = subprocess.run(
        ["bash", "-c", "set -eo pipefail\n" + script],
        cwd=folder,
        env=_env(folder),
        capture_output=True,
        text=True,
        timeout=BLOCK_TIMEOUT_S,
    )
    assert proc.returncode == 0, (
        f"{block.id} failed (exit code {proc.returncode}):\n{script}\n--- stdout\n"
        f"{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-3000:]}"
    )
    return proc.stdout


def _run(block: Block, folder: Path) -> None:
    if block.lang == "bash":
        if block.title == SERVER_TITLE:
            with _server(folder) as port:
                _shell(block.text.replace("localhost:8000", f"localhost:{port}"), folder, block)
        else:
            _shell(block.text, folder, block)
        return
    for command, expected in block.transcript():
        output = _shell(command, folder, block)
        if expected.strip():
            got = [line.rstrip() for line in output.rstrip().splitlines()]
            want = [line.rstrip() for line in expected.rstrip().splitlines()]
            assert got == want, f"{block.id}: `{command}` printed something else"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _server:
    """``zeus serve`` on a free loopback port, with its database in the page's folder."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.port = folder, _free_port()

    def __enter__(self) -> int:
        self.proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "zeus"), "serve", "--port", str(self.port),
             "--database-url", f"sqlite:///{self.folder / 'bso.db'}"],
            cwd=self.folder, env=_env(self.folder),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=1).raise_for_status()
                return self.port
            except httpx.HTTPError:
                assert self.proc.poll() is None, "zeus serve exited"
                time.sleep(0.2)
        raise AssertionError("zeus serve did not answer /health within 60 s")

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(30)


@pytest.fixture(scope="session")
def pages(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[Path, Page]]:
    made: dict[Path, Page] = {}

    class Lazy(dict[Path, Page]):
        def __missing__(self, page: Path) -> Page:
            made[page] = Page(page, tmp_path_factory.mktemp(page.stem))
            self[page] = made[page]
            return made[page]

    yield Lazy()


@pytest.mark.parametrize("block", shell_blocks(), ids=lambda b: b.id)
def test_shell_block_runs_as_written(block: Block, pages: dict[Path, Page]) -> None:
    if block.needs:
        pytest.skip(f"{block.id} {block.needs}")
    pages[block.page].run_through(block)


def test_every_page_is_read() -> None:
    """The rules apply to the pages a reader sees: the README and every page of the site."""
    assert ROOT / "README.md" in PAGES
    nav = (ROOT / "mkdocs.yml").read_text()
    assert {p.name for p in PAGES if p.parent.name == "docs"} == {
        line.split(":")[-1].strip() for line in nav.splitlines() if line.strip().endswith(".md")
    }
