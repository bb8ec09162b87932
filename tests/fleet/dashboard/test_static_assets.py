"""The page's vendored JavaScript is the npm release it names, unchanged, with its licence, and the wheel's
package data takes every file the page loads."""

import hashlib
import re
import tomllib
from fnmatch import fnmatch
from pathlib import Path

from edge_agent.fleet.dashboard.server import STATIC

REPO = Path(__file__).resolve().parents[3]
UPLOT = STATIC / "vendor" / "uplot"


def test_the_vendored_uplot_is_the_pinned_release_unchanged_with_its_mit_licence() -> None:
    source = (UPLOT / "SOURCE.txt").read_text()
    assert "uplot@1.6.32" in source
    listed = dict((name, digest) for digest, name in re.findall(r"^([0-9a-f]{64})  (\S+)$", source, re.MULTILINE))
    assert set(listed) == {"uPlot.iife.min.js", "uPlot.min.css", "LICENSE"}
    for name, digest in listed.items():
        assert hashlib.sha256((UPLOT / name).read_bytes()).hexdigest() == digest, name
    assert (UPLOT / "uPlot.iife.min.js").read_text().startswith("/*! https://github.com/leeoniya/uPlot (v1.6.32) */")
    assert (UPLOT / "LICENSE").read_text().startswith("The MIT License (MIT)")


def test_the_wheel_ships_every_file_the_page_loads() -> None:
    patterns = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"][
        "edge_agent.fleet.dashboard"]
    html = (STATIC / "index.html").read_text()
    loaded = re.findall(r'(?:src|href)="/static/([^"]+)"', html)
    assert len(loaded) == 4
    for path in [*loaded, "index.html", "vendor/uplot/LICENSE"]:
        assert (STATIC / path).is_file(), path
        assert any(fnmatch(f"static/{path}", pattern) for pattern in patterns), path
