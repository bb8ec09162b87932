"""Commands on a board through the OpenSSH client: host keys verified (never accepted on first sight), no prompts.

The system `ssh` is what Ansible uses too: no new dependency, and the operator's ~/.ssh/config, agent and jump hosts
work as they do on the command line. A run's stdin carries the install script or the bundle (a tar stream), so one
connection does one whole step and nothing is left half-copied on the board.
"""

from __future__ import annotations

import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

from edge_agent.deploy.inventory import SshTarget

SSH_FAILED = 255  # ssh's own exit status: no connection, host key or authentication refused


@dataclass(frozen=True)
class SshOptions:
    """How every connection is made: the host keys it trusts, an identity, a connect timeout, and sudo."""

    known_hosts: Path | None = None  # None: the operator's own known_hosts files
    identity: Path | None = None
    connect_timeout_s: int = 10
    become: bool = False  # run the remote command as root with `sudo -n`
    program: str = "ssh"


@dataclass(frozen=True)
class Remote:
    """What a remote command returned."""

    status: int
    stdout: str
    stderr: str

    def values(self) -> dict[str, str]:
        """The `key=value` lines the install script prints."""
        return dict(line.split("=", 1) for line in self.stdout.splitlines() if "=" in line)

    def reason(self) -> str:
        """The last line the remote side (or ssh) wrote to stderr, for one line of the result table."""
        lines = [line.strip() for line in self.stderr.splitlines() if line.strip()]
        return lines[-1] if lines else f"exit status {self.status}"


def ssh_argv(target: SshTarget, options: SshOptions, remote: list[str]) -> list[str]:
    """The ssh command line that runs `remote` (quoted for the remote shell) on `target`."""
    argv = [options.program, "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
            "-o", f"ConnectTimeout={options.connect_timeout_s}", "-o", "ServerAliveInterval=15",
            "-o", "LogLevel=ERROR", "-p", str(target.port)]
    if options.known_hosts is not None:
        argv += ["-o", f"UserKnownHostsFile={options.known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null"]
    if options.identity is not None:
        argv += ["-i", str(options.identity), "-o", "IdentitiesOnly=yes"]
    destination = f"{target.user}@{target.host}" if target.user else target.host
    command = ["sudo", "-n", *remote] if options.become else remote
    return [*argv, "--", destination, shlex.join(command)]


def run_remote(target: SshTarget, options: SshOptions, remote: list[str], stdin: bytes | None = None,
               timeout_s: float = 1800) -> Remote:
    """Run `remote` on the board, feeding `stdin`; a timeout or a missing ssh client becomes a failed Remote."""
    try:
        done = subprocess.run(ssh_argv(target, options, remote), input=stdin if stdin is not None else b"",
                              capture_output=True, timeout=timeout_s, check=False)
    except FileNotFoundError:
        return Remote(127, "", f"no ssh client here ({options.program}): install openssh-client")
    except subprocess.TimeoutExpired:
        return Remote(124, "", f"no answer within {timeout_s:.0f} s")
    return Remote(done.returncode, done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace"))
