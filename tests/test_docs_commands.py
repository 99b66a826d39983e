"""Every `flowkit` command line shown in README.md and docs/ names a real command and real
options (renamed or removed options in the docs are bugs a new user hits first)."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from flowkit.cli.main import main

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_INLINE = re.compile(r"`flowkit ([a-z]+)((?: [^`]*)?)`")
_CODE_LINE = re.compile(r"^ {4,}(?:\$ )?flowkit ([a-z]+)(.*)$")  # indented code (4+ spaces)


def shown_commands(text: str) -> list[tuple[str, str]]:
    """(command, the rest of the line) of each flowkit command in inline code or code lines
    (continuation backslashes joined, comments dropped)."""
    text = re.sub(r"\\\n\s*", " ", text)
    found = []
    for line in text.splitlines():
        code = _CODE_LINE.match(line)
        if code:
            found.append((code.group(1), " ".join(code.group(2).split(" #")[0].split())))
        else:
            found += [(m.group(1), " ".join(m.group(2).split())) for m in _INLINE.finditer(line)]
    return found


@pytest.mark.parametrize("page", PAGES, ids=[page.name for page in PAGES])
def test_commands_in_the_docs_exist_with_their_options(page):
    problems = []
    for name, rest in shown_commands(page.read_text()):
        command = main.commands.get(name)
        if command is None:
            problems.append(f"flowkit {name}: no such command")
            continue
        options = {"--help", "-h"} | {flag for param in command.params
                                      if isinstance(param, click.Option)
                                      for flag in (*param.opts, *param.secondary_opts)}
        for token in re.findall(r"(?<![\w-])(--?[a-zA-Z][\w-]*)", rest):
            if token.split("=")[0] not in options:
                problems.append(f"flowkit {name}: no option {token}")
    assert not problems, f"{page.name}: {problems}"


def test_the_scan_sees_inline_and_code_lines():
    text = "Run `flowkit view DIR --out a.png`.\n\n    flowkit extract v/ \\\n        --out o  # x\n"
    assert shown_commands(text) == [("view", "DIR --out a.png"), ("extract", "v/ --out o")]
