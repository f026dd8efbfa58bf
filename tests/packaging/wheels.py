"""Build the repository's four wheels as a user would (pip, setuptools), once per session."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from email.parser import Parser
from pathlib import Path

from tests.conftest import REPO

PROJECTS = {"edge-agent": ".", "edge-drivers": "drivers", "edge-protocol": "protocol", "edge-cloud": "cloud"}
"""Each distribution's folder in the repository."""


@dataclass(frozen=True)
class Wheel:
    path: Path

    def names(self) -> list[str]:
        with zipfile.ZipFile(self.path) as z:
            return z.namelist()

    def top_level(self) -> set[str]:
        """What the wheel puts at the top of site-packages, its .dist-info left out."""
        return {n.split("/")[0] for n in self.names() if not n.split("/")[0].endswith(".dist-info")}

    def _dist_info(self, name: str) -> str:
        with zipfile.ZipFile(self.path) as z:
            (member,) = [n for n in z.namelist() if n.endswith(f".dist-info/{name}")]
            return z.read(member).decode()

    def requires(self) -> set[str]:
        """Requirement names, extras' requirements left out."""
        metadata = Parser().parsestr(self._dist_info("METADATA"))
        return {
            r.split(";")[0]
            .split("[")[0]
            .split(" ")[0]
            .split("=")[0]
            .split(">")[0]
            .split("<")[0]
            .split("~")[0]
            for r in metadata.get_all("Requires-Dist") or []
            if "extra ==" not in r
        }

    def entry_points(self) -> str:
        try:
            return self._dist_info("entry_points.txt")
        except ValueError:
            return ""


def source_tree(out: Path) -> Path:
    """The checkout's files as git sees them (tracked and new, ignored ones left out), copied:
    a build in the checkout itself would reuse a stale ``build/lib`` and could ship a module
    deleted since."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        check=True,
        capture_output=True,
    ).stdout.decode()
    tree = out / "src"
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():
            target = tree / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return tree


def build_wheel(project: Path, out: Path) -> Wheel:
    """``pip wheel`` without build isolation: the test venv has setuptools (the dev extra),
    and nothing is downloaded."""
    before = set(out.glob("*.whl"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(out),
            ".",
        ],
        cwd=project,
        check=True,
        capture_output=True,
    )
    (made,) = set(out.glob("*.whl")) - before
    return Wheel(made)
