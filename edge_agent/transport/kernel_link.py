"""Real-kernel links (needs root, `ip`, `tc`): two network namespaces on a veth pair, each side shaped by tc.

Each namespace stands for one agent with its own access link (a `LinkModel`): the uplink is a tbf qdisc on its
veth's egress; the downlink is a tbf on an ifb device that the veth's ingress is redirected to (a u32 match-all
filter with a mirred action). Latency needs netem, which not every kernel has, so it stays in the application's
link model and a model with latency is refused here. The addresses (10.203.0.1/30 and .2) exist only inside the
namespaces, and the namespace names carry the pid and a random tag, so parallel runs do not collide. Removing
the namespaces removes everything in them (veth pair, ifb devices, qdiscs, filters).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from edge_agent.transport.throttle import LinkModel

ADDRESSES = ("10.203.0.1", "10.203.0.2")
PREFIX_LENGTH = 30
VETH, IFB = "ea-veth", "ea-ifb"
ETHERNET_HEADER, TCP_IP_HEADERS = 14, 52  # TCP/IPv4 headers with the timestamp option Linux sends by default
CARRIER_TIMEOUT_S = 5.0
# A tbf queue (beyond its burst) longer than what TCP small queues let one socket keep in a qdisc
# (tcp_limit_output_bytes: 4 MiB on recent kernels), so the sender's own qdisc never drops: a dropped last
# packet waits out a 200 ms retransmission timeout, which is the stack's doing, not the link's.
QUEUE_MIN_BYTES = 8 << 20


class KernelLinkError(RuntimeError):
    """The kernel link could not be set up (the message has the failing command and its error)."""


@dataclass(frozen=True)
class KernelLinkConfig:
    """The access links of namespace a and namespace b, and the tag their names start with."""

    a: LinkModel = field(default_factory=LinkModel)
    b: LinkModel = field(default_factory=LinkModel)
    tag: str = field(default_factory=lambda: f"ea{os.getpid()}-{secrets.token_hex(2)}")

    def __post_init__(self) -> None:
        if self.a.latency_s > 0 or self.b.latency_s > 0:
            raise ValueError("a kernel link shapes rate only: latency needs netem, so it stays in the application")
        if len(self.tag) > 20 or not self.tag.replace("-", "").isalnum():
            raise ValueError(f"tag must be up to 20 letters, digits and dashes, got {self.tag!r}")


class KernelLink:
    """Context manager: sets the namespaces up on entry (tearing down whatever it made if a step fails), and
    always removes them on exit. `command(side, argv)` runs argv inside namespace 0 (a) or 1 (b)."""

    def __init__(self, config: KernelLinkConfig | None = None) -> None:
        self.config = config or KernelLinkConfig()
        self.namespaces = (f"{self.config.tag}-a", f"{self.config.tag}-b")
        self.addresses = ADDRESSES
        self._created: list[str] = []  # only these are deleted: a namespace of the same name is not ours

    def __enter__(self) -> KernelLink:
        try:
            self._set_up()
        except BaseException:
            with contextlib.suppress(KernelLinkError):  # the setup error is the one to report
                self.tear_down()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.tear_down()

    def command(self, side: int, argv: Sequence[str]) -> list[str]:
        """argv prefixed to run inside namespace `side` (0: a, 1: b)."""
        return ["ip", "netns", "exec", self.namespaces[side], *argv]

    def tear_down(self) -> None:
        """Delete the namespaces this link created (idempotent); everything made inside them goes with them once
        no process runs in them any more (stop those first: `probe.sink_process` does on leaving)."""
        errors = []
        while self._created:
            try:
                _ip("netns", "del", self._created.pop())
            except KernelLinkError as error:
                errors.append(str(error))
        if errors:
            raise KernelLinkError("; ".join(errors))

    def _set_up(self) -> None:
        a, b = self.namespaces
        for name in self.namespaces:
            _ip("netns", "add", name)
            self._created.append(name)
            _ip("-n", name, "link", "set", "lo", "up")
        _ip("link", "add", VETH, "netns", a, "type", "veth", "peer", "name", VETH, "netns", b)
        for name, address, model in zip(self.namespaces, self.addresses, (self.config.a, self.config.b), strict=True):
            _ip("-n", name, "addr", "add", f"{address}/{PREFIX_LENGTH}", "dev", VETH)
            _ip("-n", name, "link", "set", VETH, "up")
            _shape(name, model)
        for name in self.namespaces:
            _wait_for_carrier(name)


def _shape(namespace: str, model: LinkModel) -> None:
    """Uplink: tbf on the veth; downlink: veth ingress redirected to an ifb, tbf on the ifb."""
    if model.uplink_bits > 0:
        _tc(namespace, "qdisc", "add", "dev", VETH, "root", *_tbf(model, model.uplink_bits))
    if model.downlink_bits > 0:
        _ip("-n", namespace, "link", "add", IFB, "type", "ifb")
        _ip("-n", namespace, "link", "set", IFB, "up")
        _tc(namespace, "qdisc", "add", "dev", VETH, "handle", "ffff:", "ingress")
        _tc(namespace, "filter", "add", "dev", VETH, "parent", "ffff:", "protocol", "all", "u32", "match", "u32",
            "0", "0", "action", "mirred", "egress", "redirect", "dev", IFB)
        _tc(namespace, "qdisc", "add", "dev", IFB, "root", *_tbf(model, model.downlink_bits))


def _wait_for_carrier(namespace: str, timeout: float = CARRIER_TIMEOUT_S) -> None:
    """Until the veth reports its carrier (LOWER_UP): a connection made before that can fail."""
    deadline = time.monotonic() + timeout
    while True:
        shown = subprocess.run(["ip", "-n", namespace, "-o", "link", "show", "dev", VETH], capture_output=True,
                               text=True, check=False).stdout
        if "LOWER_UP" in shown:
            return
        if time.monotonic() > deadline:
            raise KernelLinkError(f"{VETH} in {namespace} has no carrier after {timeout} s: {shown.strip()}")
        time.sleep(0.02)


def _tbf(model: LinkModel, bits: float) -> list[str]:
    """tbf arguments: the rate, the application bucket's burst, and a queue of QUEUE_MIN_BYTES past the burst."""
    burst = model.bucket_burst(bits)
    limit = burst + max(QUEUE_MIN_BYTES, int(bits / 8))  # and at least a second of the rate
    return ["tbf", "rate", f"{int(bits)}bit", "burst", str(burst), "limit", str(limit)]


def line_rate_share(mtu: int = 1500) -> float:
    """The share of a shaped rate left for TCP payload: full segments over their Ethernet frames (0.956 at 1500)."""
    return (mtu - TCP_IP_HEADERS) / (mtu + ETHERNET_HEADER)


def namespaces() -> list[str]:
    """Names of the network namespaces `ip netns` knows."""
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return [line.split()[0] for line in listing.splitlines() if line.strip()]


def unavailable_reason() -> str | None:
    """Why kernel links cannot run here (not root, no ip/tc, no namespaces, veth, ifb, tbf, mirred or
    `ip netns exec`), or None if they can."""
    if os.geteuid() != 0:
        return "kernel links need root (network namespaces and tc)"
    missing = [tool for tool in ("ip", "tc") if shutil.which(tool) is None]
    if missing:
        return f"kernel links need {' and '.join(missing)} (iproute2)"
    model = LinkModel(uplink_bits=1e6, downlink_bits=1e6)
    try:
        with KernelLink(KernelLinkConfig(model, model)) as link:
            _run(link.command(1, ["true"]))  # `ip netns exec` also needs a mount namespace of its own
            return None
    except (KernelLinkError, OSError) as error:
        return f"cannot set up a shaped veth pair between network namespaces: {error}"


def _ip(*args: str) -> None:
    _run(["ip", *args])


def _tc(namespace: str, *args: str) -> None:
    _run(["tc", "-n", namespace, *args])


def _run(argv: list[str]) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise KernelLinkError(f"`{' '.join(argv)}` failed: {done.stderr.strip() or done.returncode}")
