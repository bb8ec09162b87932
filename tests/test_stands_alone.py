"""The repository is all a user needs: no tracked file reads, names or links a path outside the checkout."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# What a file would name to reach beside the checkout: the folder the project was developed next to, by any path.
OUTSIDE = re.compile(r"\.\./shared|/work/shared|REPO\.parent|ROOT\.parent")
# `Path(__file__).resolve().parents[N]`: inside the repository while N is at most the file's depth in it.
PARENTS = re.compile(r"__file__\)(?:\.resolve\(\))?\.parents\[(\d+)\]")


def tracked_text_files() -> list[Path]:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout: the tracked files are unknown")
    names = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    files = []
    for name in names.decode().split("\0"):
        path = REPO / name
        if name and path.is_file() and b"\0" not in path.read_bytes()[:8192]:  # text, not a PNG or an npz
            files.append(path)
    return files


def test_no_tracked_file_refers_to_a_path_beside_the_checkout() -> None:
    this = Path(__file__).resolve()
    found = [f"{path.relative_to(REPO)}:{number}: {line.strip()}"
             for path in tracked_text_files() if path != this
             for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1)
             if OUTSIDE.search(line)]
    assert found == []


def test_no_python_file_climbs_above_the_repository_root() -> None:
    climbing = []
    for path in tracked_text_files():
        if path.suffix != ".py":
            continue
        depth = len(path.relative_to(REPO).parts) - 1  # folders above the file: parents[depth] is the root
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if any(int(n) > depth for n in PARENTS.findall(line)):
                climbing.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert climbing == []
