"""What flash checks on a board before it copies anything, and each problem it finds as one line.

`install.sh check` runs on the board as the ssh user (never through sudo, so it can tell whether sudo works) and
prints what it sees: architecture, Python and its venv module, sudo when `become` is set, free disk where the
release would go, and the interface or address the agent is told to advertise. `problems` compares that with the
inventory and the board's profile. A board that passes gets its bundle; one that does not gets nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from edge_agent.deploy.bundle import ARCHITECTURES

PYTHON_AT_LEAST = (3, 11)  # pyproject's requires-python
# A release's venv (numpy, onnxruntime, gRPC, zeroconf, cryptography, ...) took 270 MB on x86_64; the rest leaves
# room for checkpoints, records and the previous release.
NEEDED_FREE_MB = 500


@dataclass(frozen=True)
class Expected:
    """What the inventory and the board's profile say the board is and must have."""

    architecture: str  # the profile's [board] architecture
    profile: str
    python: str  # the inventory's python command
    advertise: str | None
    become: bool


def problems(seen: Mapping[str, str], expected: Expected) -> list[str]:
    """Every problem in `seen` (install.sh check's key=value lines) that would make the install or the agent fail,
    but free disk, which matters only when something is copied (`disk_problem`)."""
    found = []
    arch = seen.get("arch", "")
    want = ARCHITECTURES.get(expected.architecture, expected.architecture)
    if ARCHITECTURES.get(arch, arch) != want:
        found.append(f"architecture: the board is {arch or 'unknown'}, profile {expected.profile} is for {want}")
    found += _python(seen, expected.python)
    if expected.become:
        found += _sudo(seen.get("sudo", "missing"))
    if expected.advertise is not None:
        found += _advertise(seen, expected.advertise)
    return found


def disk_problem(seen: Mapping[str, str]) -> str | None:
    """The line for too little free disk where the release would go, or None."""
    free = int(seen.get("free_mb", "0") or 0)
    if free >= NEEDED_FREE_MB:
        return None
    return (f"disk: {free} MB free under {seen.get('disk_dir', '?')}, a release with its venv needs about "
            f"{NEEDED_FREE_MB} MB")


def _python(seen: Mapping[str, str], command: str) -> list[str]:
    version = seen.get("python", "missing")
    if version == "missing":
        return [f'python: no {command} on the board (install Python {_dotted(PYTHON_AT_LEAST)} or later, or set '
                'python = "..." in the inventory)']
    try:
        major, minor = (int(part) for part in version.split("."))
    except ValueError:
        return [f"python: {command} does not run on the board"]
    if (major, minor) < PYTHON_AT_LEAST:
        return [f"python: {command} is {version}, edge-agent needs {_dotted(PYTHON_AT_LEAST)} or later"]
    if seen.get("venv") != "yes":
        return [f"python: {command} cannot make a venv (Debian: apt install python3-venv)"]
    return []


def _sudo(state: str) -> list[str]:
    if state == "yes":
        return []
    if state == "refused":
        return ["sudo: become = true, but sudo -n wants a password from this user (allow it without one, or "
                "become = false)"]
    return ["sudo: become = true, but the board has no sudo (install it, or become = false)"]


def _advertise(seen: Mapping[str, str], advertise: str) -> list[str]:
    state = seen.get("advertise", "")
    names = ", ".join(seen.get("interfaces", "").split()) or "none"
    return {
        "no-interface": [f'advertise = "{advertise}": the board has no interface {advertise} (interfaces: {names})'],
        "no-ipv4": [f'advertise = "{advertise}": {advertise} has no IPv4 address on the board'],
        "not-local": [f'advertise = "{advertise}": not an address of the board (interfaces: {names})'],
    }.get(state, [])


def _dotted(version: tuple[int, int]) -> str:
    return ".".join(map(str, version))
