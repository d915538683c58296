"""The code blocks of the README and docs/*.md, as the docs test runs them.

The rules a page's author follows (docs/development.md says them too):

- A ``bash`` block runs as written, with ``set -eo pipefail``, in a scratch folder that holds the
  repository's ``examples/`` and ``bench/``, with the virtualenv's ``bin`` first on PATH. The blocks of
  one page run in order in the same folder, so a later block may use what an earlier one wrote.
- A ``console`` block is a transcript: each ``$ `` line (with ``\\`` continuations) runs, and the lines
  after it are the output it must print, exactly.
- A block whose fence has ``title="needs …"`` says what it needs that a machine without a GPU, a
  cluster or network access lacks; it is skipped with that reason.
- A block titled ``with zeus serve`` runs against a ``zeus serve`` that the test starts; its
  ``localhost:8000`` points at it.
- A ``yaml`` block whose first line is ``# <file name>`` is written to that file for the blocks after it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL = ("bash", "console")
SERVER_TITLE = "with zeus serve"
_FENCE = re.compile(r'^(`{3,})(\w*)(?:\s+title="([^"]*)")?\s*$')


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    lang: str
    title: str
    text: str

    @property
    def id(self) -> str:
        return f"{self.page.name}:{self.line}"

    @property
    def needs(self) -> str | None:
        return self.title if self.title.startswith("needs ") else None

    @property
    def file_name(self) -> str | None:
        """The file a ``yaml`` block stands for (its first line ``# name``), else None."""
        first = self.text.splitlines()[0] if self.text else ""
        match = re.fullmatch(r"#\s*([\w.-]+\.ya?ml)", first.strip())
        return match.group(1) if self.lang == "yaml" and match else None

    def transcript(self) -> list[tuple[str, str]]:
        """A console block as ``[(command, expected output)]``."""
        steps: list[tuple[str, list[str]]] = []
        lines = self.text.splitlines()
        i = 0
        while i < len(lines):
            line = lines[i]
            if line.startswith("$ "):
                command = [line[2:]]
                while command[-1].endswith("\\") and i + 1 < len(lines):
                    i += 1
                    command.append(lines[i])
                steps.append(("\n".join(command), []))
            elif steps:
                steps[-1][1].append(line)
            i += 1
        return [(command, "\n".join(output)) for command, output in steps]


def page_blocks(page: Path) -> list[Block]:
    """Every fenced block of ``page``, in order."""
    blocks = []
    lines = page.read_text().splitlines()
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match or not match.group(2):
            i += 1
            continue
        fence, lang, title = match.group(1), match.group(2), match.group(3) or ""
        start = i
        i += 1
        body = []
        while i < len(lines) and lines[i].strip() != fence:
            body.append(lines[i])
            i += 1
        blocks.append(Block(page, start + 1, lang, title, "\n".join(body)))
        i += 1
    return blocks


def shell_blocks() -> list[Block]:
    return [b for page in PAGES for b in page_blocks(page) if b.lang in SHELL]
