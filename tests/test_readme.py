"""The README's commands work from a fresh clone without activating .venv (no bare `tipc`: iproute2 has one)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def _using_it_commands() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Using it") :]
    section = section[: section.index("\n## ", 3)]
    rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| you want")]
    commands: list[str] = []
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        if len(cells) >= 2:
            commands += re.findall(r"`([^`]+)`", "|".join(cells[1:]))
    return commands


def test_using_it_commands_name_the_venv_or_a_script() -> None:
    commands = _using_it_commands()
    assert len(commands) > 10
    bare = [c for c in commands if re.match(r"(tipc|pytest|python3?) ", c)]
    assert bare == [], "commands that depend on an activated .venv (or hit iproute2's tipc)"
    text = README.read_text(encoding="utf-8")
    assert "source .venv/bin/activate" in text and "iproute2" in text


def test_the_venv_entry_point_is_the_harness() -> None:
    tipc = Path(sys.executable).parent / "tipc"
    done = subprocess.run([str(tipc), "--help"], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "TIPC" in done.stdout and "history" in done.stdout
