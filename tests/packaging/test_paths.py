"""Every repository path the sources, tests and docs name exists.

The packaging moved the drivers from ``drivers/`` into ``drivers/edge_drivers/``; a
docstring or a doc that still named a module at its old place sent a reader to a file
that is not there.  A path is recognised by the repository's
top-level folders (``drivers/…``, ``tests/…``, ``edge_agent/…`` …) and a file extension.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOP = ("bench", "cloud", "config", "docs", "drivers", "edge_agent", "protocol", "systemd", "tests")
SCANNED_SUFFIXES = {".py", ".md", ".toml", ".service", ".txt"}
SKIPPED_PARTS = {".venv", "build", "dist", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".hypothesis", "state"}  # fmt: skip

PATH = re.compile(rf"(?<![\w/.-])((?:{'|'.join(TOP)})/[\w/.-]*\w\.(?:py|md|toml|service|conf|txt))")
OLD_IMPORT = re.compile(r"^\s*(?:from|import) drivers\b", re.MULTILINE)

CITED_ELSEWHERE = {
    # pimoroni/bme280-python's test files, the source of the BME280 test vectors
    "tests/calibration.py",
    "tests/test_compensation.py",
}


def _scanned() -> list[Path]:
    files = [ROOT / "README.md", ROOT / "Makefile", ROOT / "pyproject.toml"]
    for top in TOP:
        for path in sorted((ROOT / top).rglob("*")):
            parts = set(path.relative_to(ROOT).parts)
            generated = parts & SKIPPED_PARTS or any(part.endswith(".egg-info") for part in parts)
            if path.is_file() and path.suffix in SCANNED_SUFFIXES and not generated:
                files.append(path)
    return files


def test_every_path_named_in_the_repository_exists() -> None:
    files = _scanned()
    assert len(files) > 200  # the walk found the sources
    missing = sorted(
        f"{file.relative_to(ROOT)}: {match}"
        for file in files
        for match in PATH.findall(file.read_text(errors="replace"))
        if match not in CITED_ELSEWHERE and not (ROOT / match).exists()
    )
    assert missing == []


def test_nothing_imports_the_old_top_level_drivers_package() -> None:
    offenders = [
        str(file.relative_to(ROOT))
        for file in _scanned()
        if file.suffix == ".py" and OLD_IMPORT.search(file.read_text())
    ]
    assert offenders == []
