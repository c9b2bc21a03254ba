"""Every Python block of the README and of docs/, as a reader uses it: a block that defines
a class is a file of its own (so it must import what it uses); the other blocks of a page
run one after another in page order (so a name must be defined in the block or in one
before it). pyflakes finds every name that is not. New pages under docs/ are read too."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyflakes import api, messages, reporter

from tests.docs_blocks import ROOT, Block, import_block, pages, python_blocks

# What a reader would hit as a NameError (or a SyntaxError) when running the block.
_UNDEFINED = (messages.UndefinedName, messages.UndefinedLocal, messages.UndefinedExport)


class _Collect(reporter.Reporter):
    def __init__(self) -> None:
        self.problems: list[str] = []

    def unexpectedError(self, filename: str, msg: str) -> None:
        self.problems.append(f"{filename}: {msg}")

    def syntaxError(self, filename: str, msg: str, lineno: int, offset: int, text: str) -> None:
        self.problems.append(f"{filename}:{lineno}: {msg}")

    def flake(self, message: messages.Message) -> None:
        if isinstance(message, _UNDEFINED):
            self.problems.append(str(message))


def _undefined_names(source: str, filename: str) -> list[str]:
    found = _Collect()
    api.check(source, filename, found)
    return found.problems


def _is_class_file(block: Block) -> bool:
    return bool(block.classes)


def _page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


def test_every_page_is_read() -> None:
    found = {_page_id(p) for p in pages()}
    assert {"README.md", "docs/getting-started.md", "docs/open-inference-protocol.md"} <= found
    assert all(python_blocks(ROOT / name) for name in ("README.md", "docs/tools.md"))


@pytest.mark.parametrize(
    "block",
    [b for p in pages() for b in python_blocks(p) if _is_class_file(b) and not b.is_fragment],
    ids=lambda b: b.where,
)
def test_a_class_block_is_a_file_of_its_own(block: Block) -> None:
    problems = _undefined_names(block.as_page_lines(), _page_id(block.page))
    assert not problems, f"the block at {block.where}, saved as a file:\n" + "\n".join(problems)
    # Imported as the reader's file would be: what it imports from unitserve must exist.
    # A library the reader installs for that example (scikit-learn, torch) may be absent.
    try:
        import_block(block, block.classes[0])
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] == "unitserve":
            raise


@pytest.mark.parametrize("page", [p for p in pages() if python_blocks(p)], ids=_page_id)
def test_the_other_blocks_run_in_page_order(page: Path) -> None:
    lines: list[str] = []
    for block in python_blocks(page):
        if _is_class_file(block) or block.is_fragment:
            continue
        # Each block at its own lines of the page: the checker's line numbers are the page's.
        lines += [""] * (block.line - 1 - len(lines))
        lines += block.code.splitlines()
    problems = _undefined_names("\n".join(lines) + "\n", _page_id(page))
    assert not problems, "\n".join(problems)


def test_a_fragment_is_still_python() -> None:
    for block in (b for p in pages() for b in python_blocks(p) if b.is_fragment):
        compile(block.as_page_lines(), block.where, "exec")


def test_the_check_finds_an_undefined_name() -> None:
    class_file = "class Names:\n    def predict(self, X, names):\n        return np.array(names)\n"
    assert "undefined name 'np'" in _undefined_names(class_file, "page.md")[0]
    in_order = "import numpy as np\nx = np.zeros(2)\n" + "y = x + z\n"
    assert _undefined_names(in_order, "page.md") == ["page.md:3:9: undefined name 'z'"]


def test_a_class_file_with_a_wrong_unitserve_import_fails() -> None:
    wrong = Block(ROOT / "README.md", 1, "python", "from unitserve import Nope\n\nclass A: ...\n")
    with pytest.raises(ImportError, match="Nope"):
        import_block(wrong, "A")
