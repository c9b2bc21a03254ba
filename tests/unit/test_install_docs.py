"""An extra is installed the way a reader can: unitserve is on no package index yet, so
wherever the README, docs/, `--help` or a message says to install `unitserve[EXTRA]`, the
same line gives the form that works in a clone, `pip install -e '.[EXTRA]'`."""

from __future__ import annotations

import ast
import functools
import re
import sys
from importlib import metadata
from pathlib import Path

from tests.docs_blocks import ROOT, pages
from unitserve import settings

_FROM_AN_INDEX = re.compile(r"install\s+['\"]?unitserve\[(\w+)\]")


def _texts() -> list[tuple[str, str]]:
    """(where, text) for every page, every option's help and every source file."""
    found = [(str(p.relative_to(ROOT)), p.read_text()) for p in pages()]
    found += [(f"--help of {o.flag or o.env}", o.help) for o in settings.OPTIONS]
    found += [(str(p.relative_to(ROOT)), p.read_text()) for p in (ROOT / "src").rglob("*.py")]
    return found


def _lacking_the_clone_form(text: str) -> list[str]:
    return [
        line.strip()
        for line in text.splitlines()
        for extra in _FROM_AN_INDEX.findall(line)
        if f"-e '.[{extra}]'" not in line
    ]


def test_every_extra_install_works_in_a_clone() -> None:
    lacking = [
        f"{where}: {line}" for where, text in _texts() for line in _lacking_the_clone_form(text)
    ]
    assert not lacking, "\n".join(lacking)


def test_the_check_sees_an_index_only_install() -> None:
    assert _lacking_the_clone_form("Needs pip install 'unitserve[tracing]'.")
    assert not _lacking_the_clone_form("pip install -e '.[tracing]' (or 'unitserve[tracing]')")


@functools.cache
def _brought() -> frozenset[str]:
    """The distributions installing unitserve brings (its dependencies, no extra)."""
    return frozenset(
        re.split(r"[<>=!~;\[ ]", r)[0].lower()
        for r in metadata.requires("unitserve") or []
        if "extra ==" not in r
    )


@functools.cache
def _providers() -> dict[str, list[str]]:
    return dict(metadata.packages_distributions())


def _needs(folder: Path) -> set[str]:
    """The distributions an example imports that installing unitserve does not bring."""
    brought = _brought()
    own = {p.stem for p in folder.rglob("*.py")} | {p.name for p in folder.iterdir()}
    distributions = _providers()
    needed = set()
    for source in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in (n.split(".")[0] for n in names):
                if name in sys.stdlib_module_names or name in own or name == "unitserve":
                    continue
                # A namespace package (google) may come from several distributions.
                providers = distributions.get(name, [name])
                if not any(d.lower() in brought for d in providers):
                    needed.add(providers[0])
    return needed


def test_a_page_that_points_at_an_example_says_what_it_needs() -> None:
    lacking = []
    for folder in sorted(p for p in (ROOT / "examples").iterdir() if p.is_dir()):
        needed = _needs(folder)
        for page in pages():
            text = page.read_text()
            if f"examples/{folder.name}" not in text:
                continue
            lacking += [
                f"{page.relative_to(ROOT)} points at examples/{folder.name}, which needs {dist}"
                for dist in sorted(needed)
                if not re.search(rf"pip install [^`\n]*\b{re.escape(dist)}\b", text, re.I)
            ]
    assert not lacking, "\n".join(lacking)


def test_the_batching_example_needs_scikit_learn() -> None:
    assert _needs(ROOT / "examples" / "batching_sklearn") == {"scikit-learn"}
