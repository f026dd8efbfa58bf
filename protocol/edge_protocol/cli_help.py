"""Help screens a newcomer can read: ``--count N``, not ``--count <int range> [x>=0]``.

Shared by every edge-* command (``edge-agent`` on the device, ``edge-auth`` and
``edge-ingest`` in the cloud): an operator convention, like exit 78 for a bad
configuration.  Needs typer, which the ``cli`` extra (``edge-protocol[cli]``) brings; the
rest of this package does not import it.

Typer 0.29 labels every parameter with its Python type (``--json <bool>``,
``sensors... <list[str]>``) and writes a required argument as ``{sensor}`` in the usage
line, with no setting to turn either off.  :class:`Command` and :class:`Group` (passed as
``cls=`` wherever a command or a Typer is made) tidy each parameter once Typer has built
it: a flag takes nothing, an option names what it takes (its ``metavar``, else its name in
capitals), an argument shows no type, the usage line reads ``SENSOR`` or ``[SENSORS...]``,
and a docstring's paragraphs are not broken where the source wraps them.
Only what help *shows* changes: values are still converted and range-checked by Typer.
"""

from __future__ import annotations

from typing import Any

import typer.core
import typer.models


def _no_type(ctx: Any) -> None:
    return None


def _tidy(param: Any) -> Any:
    if param.param_type_name == "argument":
        param.display_type_rich = _no_type  # the name says what it is; "<list[str]>" does not
        param.metavar = param.metavar or param.name.upper()
    elif getattr(param, "is_flag", False):
        param.metavar = ""  # a flag takes no value: nothing after it
    elif param.metavar is None:
        param.metavar = param.name.upper()
    if getattr(param, "min", None) is not None or getattr(param, "max", None) is not None:
        param.min = param.max = None  # "[x>=0]": the help text says it in words
    return param


def _usage(params: list[Any]) -> list[str]:
    pieces = ["[OPTIONS]"]
    for p in params:
        if p.param_type_name == "argument":
            name = p.metavar + ("..." if p.nargs != 1 else "")
            pieces.append(name if p.required else f"[{name}]")
    return pieces


def _paragraphs(text: str | None) -> str | None:
    """A docstring's paragraphs each on one line: Typer prints its line breaks as they are,
    so a paragraph wrapped at 100 columns in the source broke mid-sentence on the screen."""
    if text is None:
        return None
    return "\n\n".join(" ".join(p.split()) for p in text.strip().split("\n\n"))


CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"]}
"""Every edge-* command and subcommand (click passes it on to the subcommands): ``-h`` as ``--help``."""


class Command(typer.core.TyperCommand):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.help = _paragraphs(self.help)

    def get_params(self, ctx: Any) -> list[Any]:
        return [_tidy(p) for p in super().get_params(ctx)]

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        return _usage(self.get_params(ctx))


class Group(typer.core.TyperGroup):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.help = _paragraphs(self.help)

    def get_params(self, ctx: Any) -> list[Any]:
        return [_tidy(p) for p in super().get_params(ctx)]


def _unchosen(cls: Any, default: type) -> bool:
    """Typer's default class (``None``, or a placeholder for it), not one the code chose."""
    if isinstance(cls, typer.models.DefaultPlaceholder):
        cls = cls.value
    return cls is None or cls is default


def tidy(app: typer.Typer) -> None:
    """Every command and group of ``app`` and of its sub-Typers (registered so far) uses
    :class:`Command` or :class:`Group`; call it once, after the last command is added."""
    if _unchosen(app.info.cls, typer.core.TyperGroup):
        app.info.cls = Group
    for command in app.registered_commands:
        if _unchosen(command.cls, typer.core.TyperCommand):
            command.cls = Command
    for group in app.registered_groups:
        if _unchosen(group.cls, typer.core.TyperGroup):
            group.cls = Group
        if group.typer_instance is not None:
            tidy(group.typer_instance)


def add_version_option(app: typer.Typer, command: str, distribution: str) -> None:
    """``--version`` on ``app``: prints ``<command> <version of distribution>`` and exits."""

    def show(value: bool) -> None:
        if value:
            from importlib.metadata import PackageNotFoundError, version

            try:
                found = version(distribution)
            except PackageNotFoundError:  # run from a checkout that was never installed
                found = "0.0.0+source"
            typer.echo(f"{command} {found}")
            raise typer.Exit()

    # A default, not an annotation: the callback is a local, out of reach of a postponed one.
    @app.callback()
    def _root(
        show_version: bool = typer.Option(
            False, "--version", callback=show, is_eager=True, help="Show the version and exit."
        ),
    ) -> None:
        pass
