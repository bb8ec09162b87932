"""What flash checks on a board: install.sh check's report turned into one line per problem, or none."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from edge_agent.deploy.bundle import install_script
from edge_agent.deploy.preflight import NEEDED_FREE_MB, Expected, disk_problem, problems

GOOD = {"arch": "aarch64", "python": "3.11", "venv": "yes", "sudo": "yes", "free_mb": "9000", "disk_dir": "/opt",
        "interfaces": "eth0 lo wlan0", "advertise": "interface", "advertise_ipv4": "192.168.1.23"}
PI = Expected("aarch64", "rpi-4", "python3", "eth0", become=True)


def test_a_board_that_fits_its_profile_has_no_problem() -> None:
    assert problems(GOOD, PI) == [] and disk_problem(GOOD) is None
    assert problems({**GOOD, "arch": "arm64"}, PI) == []  # another name for the same architecture


def test_each_problem_is_one_line_that_says_what_to_do() -> None:
    seen = {**GOOD, "arch": "armv7l", "python": "3.9", "sudo": "missing", "advertise": "no-interface"}
    assert problems(seen, PI) == [
        "architecture: the board is armv7l, profile rpi-4 is for aarch64",
        "python: python3 is 3.9, edge-agent needs 3.11 or later",
        "sudo: become = true, but the board has no sudo (install it, or become = false)",
        'advertise = "eth0": the board has no interface eth0 (interfaces: eth0, lo, wlan0)',
    ]
    assert problems({**GOOD, "python": "missing"}, PI)[0].startswith("python: no python3 on the board")
    assert problems({**GOOD, "venv": "no"}, PI) == [
        "python: python3 cannot make a venv (Debian: apt install python3-venv)"]
    assert "wants a password" in problems({**GOOD, "sudo": "refused"}, PI)[0]
    assert problems({**GOOD, "advertise": "no-ipv4"}, PI) == ['advertise = "eth0": eth0 has no IPv4 address on the '
                                                             'board']
    assert disk_problem({**GOOD, "free_mb": "120"}) == (f"disk: 120 MB free under /opt, a release with its venv needs "
                                                        f"about {NEEDED_FREE_MB} MB")


def test_sudo_and_the_interface_are_only_checked_when_the_inventory_asks_for_them() -> None:
    plain = Expected("aarch64", "rpi-4", "python3", None, become=False)
    assert problems({**GOOD, "sudo": "missing", "advertise": "no-interface"}, plain) == []


def test_the_install_scripts_check_reports_this_machine(tmp_path: Path) -> None:
    script = tmp_path / "install.sh"
    script.write_text(install_script())
    done = subprocess.run(["sh", str(script), "check", "python3", "lo", "no"], capture_output=True, text=True,
                          env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin:/usr/sbin:/sbin"}, check=True)
    seen = dict(line.split("=", 1) for line in done.stdout.splitlines())
    assert seen["python"].startswith("3.") and "lo" in seen["interfaces"].split()
    assert seen["advertise"] == "interface" or seen["advertise"] == "no-ipv4"  # lo, with or without `ip`
    root = Path("/opt") if os.geteuid() == 0 else tmp_path  # where its release would go, or what holds it
    assert seen["disk_dir"] == str(root) and int(seen["free_mb"]) > 0
    missing = subprocess.run(["sh", str(script), "check", "python3", "eth-nowhere", "no"], capture_output=True,
                             text=True, check=True).stdout
    assert "advertise=no-interface" in missing.splitlines()
    assert problems(seen, Expected(seen["arch"], "generic", "python3", "lo", become=False)) == []
