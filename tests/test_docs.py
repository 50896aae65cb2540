"""Docs name only files that exist: a newcomer who follows one never hits a dead end."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    *sorted(p for p in ROOT.glob("*/README.md")),
    *sorted(p for p in ROOT.glob("*/*/README.md") if ".venv" not in p.parts),
]
TOP = "server|desktop|bench|tests|resources|packaging|docs|scripts|\\.ci|\\.github"
# `server/worker.py`, `resources/web/`, `bench/README.md` … inside backticks.
PATH = re.compile(rf"`((?:{TOP})/[\w./-]*)`")


def named_paths(doc: Path) -> list[str]:
    return [m.group(1).rstrip(".") for m in PATH.finditer(doc.read_text(encoding="utf-8"))]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_path_a_doc_names_exists(doc: Path) -> None:
    missing = [p for p in named_paths(doc) if not (ROOT / p).exists()]
    assert not missing, f"{doc.relative_to(ROOT)} names paths that do not exist: {missing}"


def test_the_check_sees_paths() -> None:
    assert "server/coordinator.py" in named_paths(ROOT / "docs" / "ARCHITECTURE.md")
