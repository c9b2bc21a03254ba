"""docs/getting-started.md tried as a new user would: the class it shows is the one
`unitserve init` writes, the answer it shows is what that class answers when served, and
step 4 runs as written with nothing installed beyond unitserve (no pytest)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import Server, clean_env, run_cli
from tests.docs_blocks import ROOT, blocks, python_blocks

PAGE = ROOT / "docs" / "getting-started.md"


def _section(title: str) -> str:
    text = PAGE.read_text()
    start = text.index(f"## {title}")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else None]


def _console(title: str) -> list[tuple[str, list[str]]]:
    """The console blocks of a section: each `$ command` with the lines it prints."""
    section = _section(title)
    commands: list[tuple[str, list[str]]] = []
    for block in blocks(PAGE, "console"):
        if block.code not in section:
            continue
        continued = False
        for line in block.code.splitlines():
            if continued:  # the command goes on after a trailing backslash
                command, printed = commands.pop()
                commands.append((command[:-1] + line.strip(), printed))
            elif line.startswith("$ "):
                commands.append((line[2:].split("  #")[0].strip(), []))
            elif commands:
                commands[-1][1].append(line)
            continued = bool(commands) and commands[-1][0].endswith("\\")
    return commands


def _demo(tmp_path: Path) -> Path:
    [(command, _)] = [c for c in _console("2. Write a component") if "unitserve init" in c[0]]
    assert run_cli(*command.split()[1:], cwd=tmp_path).returncode == 0, command
    return tmp_path / "demo"


def test_the_class_shown_is_the_one_init_writes(tmp_path: Path) -> None:
    shown = [b.code for b in python_blocks(PAGE) if "Demo" in b.classes]
    assert shown == [(_demo(tmp_path) / "Demo.py").read_text()]


def test_step_4_runs_without_pytest(tmp_path: Path) -> None:
    demo = _demo(tmp_path)
    # A newcomer's environment: unitserve and its dependencies, no pytest.
    blocker = tmp_path / "no-pytest"
    blocker.mkdir()
    (blocker / "pytest.py").write_text("raise ModuleNotFoundError(\"No module named 'pytest'\")\n")
    env = clean_env({"PYTHONPATH": str(blocker)})
    steps = _console("4. Test it")
    assert steps, "step 4 shows no command"
    for command, printed in steps:
        argv = [sys.executable if w == "python" else w for w in command.split()]
        done = subprocess.run(argv, cwd=demo, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, f"{command}:\n{done.stdout}{done.stderr}"
        assert done.stdout.splitlines() == printed, command


def test_step_3_answer_is_what_the_served_class_answers(tmp_path: Path) -> None:
    [(command, printed)] = [c for c in _console("3. Serve it") if c[0].startswith("curl")]
    body = re.search(r"-d '([^']*)'", command)
    assert body, command
    server = Server("bare-serve", cwd=_demo(tmp_path))
    server.command.remove("bare-serve")  # `unitserve serve` with no class, as on the page
    server.start()
    try:
        r = server.post("/api/v1.0/predictions", json=json.loads(body.group(1)))
        assert r.status_code == 200, r.text
        assert [r.text.rstrip("\n")] == printed
    finally:
        assert server.stop() == 0
