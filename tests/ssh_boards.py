"""Boards for `edge-agent flash` tests: accounts on this machine behind a real OpenSSH server on 127.0.0.1.

Each board is a test account (useradd, so root only) whose home is a fresh folder; the server is Debian's sshd
(`make sshd` installs it) with a throwaway host key, public-key login only, for these accounts only.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SSHD = Path("/usr/sbin/sshd")


@dataclass(frozen=True)
class SshBoards:
    """The server's port, the known_hosts file that trusts it, the operator's key, and one account per board."""

    port: int
    known_hosts: Path
    operator_key: Path
    stranger_key: Path  # a key no account authorizes
    users: tuple[str, ...]
    homes: tuple[Path, ...]


def why_not() -> str | None:
    """Why these boards cannot be made here, or None."""
    if os.geteuid() != 0:
        return "flashing onto local ssh accounts needs root (useradd)"
    if not SSHD.is_file() or shutil.which("ssh-keygen") is None or shutil.which("ssh") is None:
        return "needs Debian's openssh-server and openssh-client (make sshd)"
    return None


@contextmanager
def ssh_boards(count: int) -> Iterator[SshBoards]:
    """`count` accounts behind a running sshd; everything is removed afterwards."""
    base = Path(tempfile.mkdtemp(prefix="edge-agent-boards-"))
    base.chmod(0o755)  # the accounts must reach their homes
    users = tuple(f"eaf{os.getpid() % 100000}x{i}" for i in range(count))
    homes = tuple(base / f"board-{i}" for i in range(count))
    server: subprocess.Popen[bytes] | None = None
    try:
        for path in ("host_key", "operator_key", "stranger_key"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path, "-f", str(base / path)],
                           check=True, timeout=60)
        for user, home in zip(users, homes, strict=True):
            subprocess.run(["useradd", "--home-dir", str(home), "--create-home", "--shell", "/bin/sh",
                            "--password", "*", user], check=True, timeout=60)
            ssh_dir = home / ".ssh"
            ssh_dir.mkdir(mode=0o700)
            (ssh_dir / "authorized_keys").write_text((base / "operator_key.pub").read_text())
            (ssh_dir / "authorized_keys").chmod(0o600)
            shutil.chown(ssh_dir, user, user)
            shutil.chown(ssh_dir / "authorized_keys", user, user)
        port = _free_port()
        config = base / "sshd_config"
        config.write_text(f"Port {port}\nListenAddress 127.0.0.1\nHostKey {base / 'host_key'}\n"
                          f"PidFile {base / 'sshd.pid'}\nAuthorizedKeysFile .ssh/authorized_keys\n"
                          "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n"
                          f"UsePAM no\nStrictModes yes\nAllowUsers {' '.join(users)}\n")
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation folder
        server = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(config)], stdout=subprocess.DEVNULL,
                                  stderr=(base / "sshd.log").open("wb"))
        _wait_for_port(port, server)
        host_key = (base / "host_key.pub").read_text().split()
        (base / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_key[0]} {host_key[1]}\n")
        yield SshBoards(port, base / "known_hosts", base / "operator_key", base / "stranger_key", users, homes)
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        for home in homes:  # a safety net for agents the test left running: by their pid files
            pidfile = home / ".local" / "share" / "edge-agent" / "agent.pid"
            if pidfile.is_file():
                with contextlib.suppress(ValueError, ProcessLookupError):
                    os.kill(int(pidfile.read_text()), signal.SIGKILL)
        for user in users:
            subprocess.run(["userdel", user], check=False, timeout=60, capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"sshd exited with status {server.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"sshd did not listen on 127.0.0.1:{port} within 30 s")
