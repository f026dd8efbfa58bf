"""What every edge-* command's help screens must hold (edge_protocol.cli_help): at 80
columns, no type labels or ``{braces}``, nothing cut, every parameter explained, and every
help text shown whole (rich reads ``[default: …]`` as markup and drops it)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import typer.main
from typer.testing import Result

LABEL = re.compile(r"<(bool|str|int|float|path|list\[[a-z]+\]|int range|float range)>|\[x[<>]=|\{[a-z_]+\}")
WIDTH = 80


def commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from commands(sub, (*path, name))


def _words(text: str) -> str:
    """The text without the panels' borders, as one line: a wrapped help text reads whole."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


def check_every_screen(app: typer.Typer, run: Callable[..., Result]) -> int:
    """Every help screen of ``app`` (``run`` invokes it at 80 columns); how many were read."""
    screens = 0
    for path, command in commands(typer.main.get_command(app)):
        result = run(*path, "--help")
        assert result.exit_code == 0, (path, result.output)
        screen = result.stdout
        screens += 1
        assert not LABEL.search(screen), (path, LABEL.search(screen), screen)
        assert all(len(line) <= WIDTH for line in screen.splitlines()), (path, screen)
        assert not re.search(r"…\s*(│|$)", screen, re.M), (path, screen)  # nothing cut
        assert command.help, f"{' '.join(path)} has no description"
        # A paragraph is one line of text: Typer would print the source's line breaks.
        assert all("\n" not in p for p in command.help.split("\n\n")), (path, command.help)
        for param in command.params:
            assert param.help, f"{' '.join(path)} {param.name}: no help"
            shown = param.help.replace("\\[", "[")  # rich's escape, printed as "["
            assert _words(shown) in _words(screen), (path, param.name, param.help, screen)
    return screens
