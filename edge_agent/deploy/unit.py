"""The systemd unit of a flashed board: one agent, a dedicated user, checkpoints in its StateDirectory, sandboxed.

`systemd-analyze security --offline=true` rates it 1.2 with systemd 252 (tests/deploy/test_unit.py keeps it at
3.0 or less). The sandbox leaves the agent what it needs: IPv4/IPv6 for gRPC and mDNS, AF_UNIX, and AF_NETLINK,
with which zeroconf and `advertise = "eth0"` list the interfaces and their addresses. MemoryDenyWriteExecute is
left off: libffi closures (cffi, under cryptography) may need writable executable memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

UNIT_NAME = "edge-agent.service"
SERVICE_USER = "edge-agent"
SYSTEM_ROOT = PurePosixPath("/opt/edge-agent")  # where a root install keeps its releases
STATE_NAME = "edge-agent"  # /var/lib/edge-agent: checkpoints and metrics, kept across releases


@dataclass(frozen=True)
class UnitSettings:
    """What the unit names: the install root whose `current` release it runs, the user, the state folder's name."""

    root: PurePosixPath = SYSTEM_ROOT
    user: str = SERVICE_USER
    state: str = STATE_NAME
    stop_timeout_s: int = 30


def render_unit(settings: UnitSettings | None = None) -> str:
    """The unit file's text. ExecStart runs the `current` release; the install script restarts it on a switch."""
    settings = settings or UnitSettings()
    current = settings.root / "current"
    return f"""\
# Installed by `edge-agent flash`; `edge-agent unflash` removes it. Logs: journalctl -u {UNIT_NAME}
[Unit]
Description=edge-agent: one decentralized-learning agent (SPARK) of a fleet
Documentation=https://github.com/edge-agent/edge-agent#deploy-a-fleet
Wants=network-online.target
After=network-online.target

[Service]
Type=exec
User={settings.user}
Group={settings.user}
# Checkpoints and metrics go to the StateDirectory, whichever release runs (flags win over agent.toml).
ExecStart={current}/venv/bin/edge-agent run --config {current}/agent.toml \\
          --checkpoint-dir /var/lib/{settings.state}/checkpoints --metrics /var/lib/{settings.state}/metrics.jsonl
Environment=XDG_CACHE_HOME={current}/cache EDGE_AGENT_PROFILES={current}/profiles PYTHONUNBUFFERED=1
WorkingDirectory={current}
StateDirectory={settings.state}
StateDirectoryMode=0700
# SIGTERM: the agent abandons its round and exits 0 with the last round's checkpoint.
KillSignal=SIGTERM
TimeoutStopSec={settings.stop_timeout_s}
Restart=on-failure
RestartPreventExitStatus=2
RestartSec=5
StandardOutput=journal
StandardError=journal

# Sandbox: read-only system, no home, no devices, no privileges, nothing but the network it needs.
ProtectSystem=strict
PrivateMounts=yes
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
PrivateUsers=yes
NoNewPrivileges=yes
CapabilityBoundingSet=
AmbientCapabilities=
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
ProtectClock=yes
ProtectHostname=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectProc=invisible
ProcSubset=pid
RemoveIPC=yes
UMask=0077
DevicePolicy=closed
KeyringMode=private
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged @mount @swap @reboot @raw-io @debug @cpu-emulation @obsolete
SystemCallErrorNumber=EPERM

[Install]
WantedBy=multi-user.target
"""
