"""Device profiles: register maps shipped as data (``profiles/NAME.toml``), chosen with ``profile = "NAME"``."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources

from edge_drivers.errors import OptionError
from edge_drivers.modbus.registers import NAME, Register, registers_from


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    baudrate: int | None
    registers: tuple[Register, ...]


def profile_names() -> list[str]:
    """The profiles shipped with the driver."""
    folder = resources.files(__package__).joinpath("profiles")
    return sorted(p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml"))


def load_profile(name: str) -> Profile:
    """The profile ``name``; an unknown name is an :class:`OptionError` listing the known ones."""
    if name not in profile_names():
        raise OptionError(
            NAME, "profile", f"unknown profile (known: {', '.join(profile_names())})", value=name
        )
    text = resources.files(__package__).joinpath("profiles", f"{name}.toml").read_text(encoding="utf-8")
    data = tomllib.loads(text)
    try:
        registers = registers_from(data["registers"])
    except OptionError as exc:  # a shipped file is ours: say which one
        raise OptionError(NAME, "profile", f"profile file {name}.toml is invalid: {exc.reason}") from exc
    return Profile(name, str(data.get("description", "")), data.get("baudrate"), registers)
