"""The code blocks of the README and of docs/, read the way a reader reads them.

A reader copies a block that defines a class into a file of its own (`MyModel.py`), and
runs the other Python blocks of a page one after another, in page order. The helpers here
give the tests those two views of a page, with each block's line number on the page so
that a failure points at the page, not at the test.

A block that is deliberately not runnable (a method shown without its class, a sketch
with `...` in place of real values) starts with a visible comment line, `# fragment: why`:
the docs test only parses it. CONTRIBUTING.md describes the convention.
"""

from __future__ import annotations

import ast
import re
import types
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FRAGMENT = "# fragment:"

# A fenced block: its info string (the language) and its text, from the opening line on.
_FENCE = re.compile(r"^```([\w+-]*)[^\n]*\n(.*?)^```[ \t]*$", re.M | re.S)


def pages() -> list[Path]:
    """The README and every page under docs/, found by a glob so that new pages are read."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # the line of the page where the block's code starts (1-based)
    language: str
    code: str

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    @property
    def is_fragment(self) -> bool:
        return self.code.lstrip().startswith(FRAGMENT)

    @property
    def classes(self) -> list[str]:
        """The classes the block defines at its top level."""
        tree = ast.parse(self.code)
        return [node.name for node in tree.body if isinstance(node, ast.ClassDef)]

    def as_page_lines(self) -> str:
        """The block's code at its own line numbers of the page (blank lines before it), so
        a checker's line numbers are the page's."""
        return "\n" * (self.line - 1) + self.code


def blocks(page: Path, language: str | None = None) -> list[Block]:
    text = page.read_text()
    found = []
    for match in _FENCE.finditer(text):
        if language is not None and match.group(1) != language:
            continue
        line = text.count("\n", 0, match.start(2)) + 1
        found.append(Block(page, line, match.group(1), match.group(2)))
    return found


PYTHON = ("python", "py", "python3")


def on_test_ports(code: str, http_port: int, grpc_port: int) -> str:
    """The one change a docs test makes to an example it runs: the pages' ports (REST
    9000, gRPC 5000 on localhost) become the free loopback ports the test serves on."""
    for port, mine in (("9000", http_port), ("5000", grpc_port)):
        code = code.replace(f"localhost:{port}", f"127.0.0.1:{mine}")
        code = code.replace(f"localhost {port}", f"127.0.0.1 {mine}")
    return code


def python_blocks(page: Path) -> list[Block]:
    return [b for b in blocks(page) if b.language in PYTHON]


def page_class(page: Path, name: str) -> type:
    """The class `name` as a reader gets it: its block of the page, saved as a file of its
    own and imported, with nothing added."""
    for block in python_blocks(page):
        if name in block.classes:
            cls: type = getattr(import_block(block, name), name)
            return cls
    raise LookupError(f"{page.relative_to(ROOT)} shows no class {name}")


def import_block(block: Block, name: str) -> types.ModuleType:
    """The block run as the module `name` (its file saved as `name`.py) would be."""
    module = types.ModuleType(name)
    module.__file__ = f"{name}.py"
    exec(compile(block.as_page_lines(), str(block.page), "exec"), module.__dict__)
    return module
