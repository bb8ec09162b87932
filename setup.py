"""Packages for setuptools: edge_agent*, plus firmware_profiles/*.toml shipped as edge_agent/deploy/firmware_profiles.

pyproject.toml holds the metadata. The mapping lives here because pyproject's `packages.find` cannot add a package
whose directory sits outside edge_agent/: the TOML files stay at the top of the repository, and the wheel (the
board's install) still carries them, where deploy/profiles.py looks first.
"""

from setuptools import find_packages, setup

PROFILES = "edge_agent.deploy.firmware_profiles"

setup(
    packages=[*find_packages(include=["edge_agent*"]), PROFILES],
    package_dir={PROFILES: "firmware_profiles"},
    package_data={PROFILES: ["*.toml"]},
)
