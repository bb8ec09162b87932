"""pyproject.toml lists every package of edge_agent/ (the list is explicit because the wheel maps firmware_profiles/
into the package), so a new package cannot be left out of a board's install."""

import tomllib
from pathlib import Path

from setuptools import find_packages

REPO = Path(__file__).resolve().parents[2]


def test_the_wheel_lists_every_package_and_ships_the_profiles_inside_the_package() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    assert listed - {"edge_agent.deploy.firmware_profiles"} == set(find_packages(str(REPO), include=["edge_agent*"]))
    assert config["package-dir"] == {"edge_agent.deploy.firmware_profiles": "firmware_profiles"}
    assert config["package-data"]["edge_agent.deploy.firmware_profiles"] == ["*.toml"]
    assert sorted(p.name for p in (REPO / "firmware_profiles").glob("*.toml"))  # the folder it maps exists
