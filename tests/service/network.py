"""Hosts on this machine that can be cut off: network namespaces on a private network of their own.

Each :class:`Host` is a network namespace (``ip netns``) joined by a veth pair to a bridge in the
root namespace: the "back" network, a private /24 where Redis listens on the bridge's address. A
host that serves clients (the web) also gets a "front" link of its own, a veth pair on a second
/24, so the test (in the root namespace) still reaches it when its back link is cut.
:meth:`Host.cut_off` takes the root side of its back link down (``ip link set ... down``): its
open connections to Redis hang as they would across a failed switch (no reset, no answer), and
:meth:`Host.reconnect` brings the link back. Nothing is routed off the machine: the addresses are
on the bridge and veths only, and the namespaces have no other interface.

Making namespaces needs root (CAP_NET_ADMIN) and the ``ip`` tool; :func:`network_or_skip` skips a
test that cannot have them with the reason, and fails it under CI (``CI=true``), where it must run.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import pytest


def _ip(*args: str, namespace: str | None = None) -> None:
    command = ["ip", "netns", "exec", namespace, "ip", *args] if namespace else ["ip", *args]
    subprocess.run(command, check=True, capture_output=True, text=True, timeout=30)


@dataclass
class Host:
    """One namespace: ``address`` on the back network; ``front_address`` (when it has a front link)
    where the root namespace reaches it."""

    namespace: str
    address: str
    back_link: str  # the root side of its back veth pair: what cut_off takes down
    front_address: str | None = None

    @property
    def launcher(self) -> list[str]:
        """The command prefix that runs a process on this host (Stack's ``launcher``)."""
        return ["ip", "netns", "exec", self.namespace]

    def cut_off(self) -> None:
        _ip("link", "set", self.back_link, "down")

    def reconnect(self) -> None:
        _ip("link", "set", self.back_link, "up")


class Network:
    """A bridge (the back network; :attr:`redis_address` is its address, in the root namespace)
    and the hosts added to it; :meth:`close` removes all of it. Names carry this process's id, and
    the /24s are picked unused, so tests of several checkouts at once do not collide."""

    def __init__(self) -> None:
        self.tag = f"dg{os.getpid() % 100000}"
        self.back, self.front = _unused_subnets()
        self.bridge = f"{self.tag}br"
        self.redis_address = f"{self.back}.1"
        self.hosts: list[Host] = []
        self._links: list[str] = []

    def open(self) -> Network:
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.redis_address}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        return self

    def add_host(self, name: str, front: bool = False) -> Host:
        """A new namespace on the back network (and with ``front``, reachable on a front link)."""
        number = len(self.hosts) + 1
        namespace = f"{self.tag}-{name}"
        _ip("netns", "add", namespace)
        host = Host(namespace, f"{self.back}.{10 + number}", f"{self.tag}b{number}")
        self.hosts.append(host)
        _ip("netns", "exec", namespace, "ip", "link", "set", "lo", "up")
        self._veth(host.back_link, f"{self.tag}n{number}", namespace)
        _ip("link", "set", host.back_link, "master", self.bridge)
        _ip("link", "set", host.back_link, "up")
        _ip("addr", "add", f"{host.address}/24", "dev", f"{self.tag}n{number}", namespace=namespace)
        _ip("link", "set", f"{self.tag}n{number}", "up", namespace=namespace)
        if front:
            # A point-to-point /30 of the front /24 per host: .4n+1 in the root namespace, .4n+2 in the host.
            outside, inside = f"{self.tag}f{number}", f"{self.tag}g{number}"
            self._veth(outside, inside, namespace)
            _ip("addr", "add", f"{self.front}.{4 * number + 1}/30", "dev", outside)
            _ip("link", "set", outside, "up")
            host.front_address = f"{self.front}.{4 * number + 2}"
            _ip("addr", "add", f"{host.front_address}/30", "dev", inside, namespace=namespace)
            _ip("link", "set", inside, "up", namespace=namespace)
        return host

    def _veth(self, outside: str, inside: str, namespace: str) -> None:
        _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
        self._links.append(outside)
        _ip("link", "set", inside, "netns", namespace)

    def close(self) -> None:
        """Remove the namespaces (their ends of the veth pairs go with them), the links and the bridge."""
        for host in self.hosts:
            with contextlib.suppress(subprocess.SubprocessError):
                _ip("netns", "del", host.namespace)
        for link in [*self._links, self.bridge]:
            with contextlib.suppress(subprocess.SubprocessError):
                _ip("link", "del", link)


def _unused_subnets() -> tuple[str, str]:
    """Two private /24s (as their first three octets) that no interface here uses."""
    used = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True, check=True).stdout
    picker = random.Random(os.getpid())
    while True:
        second, third = picker.randrange(16, 32), picker.randrange(0, 254, 2)
        back, front = f"172.{second}.{third}", f"172.{second}.{third + 1}"
        if f" {back}." not in used and f" {front}." not in used:
            return back, front


def cannot_make_namespaces() -> str | None:
    """Why no network namespace can be made here, or None when one can."""
    if shutil.which("ip") is None:
        return "no `ip` tool (iproute2)"
    probe = f"dg{os.getpid() % 100000}-probe"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"`ip netns add` failed: {made.stderr.strip()} (needs root or CAP_NET_ADMIN)"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


@contextlib.contextmanager
def network_or_skip() -> Iterator[Network]:
    """A :class:`Network`, removed on exit; the test is skipped (failed under CI) where none can be made."""
    reason = cannot_make_namespaces()
    if reason:
        message = f"network namespaces cannot be made here: {reason}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}; CI must run the partition tests", pytrace=False)
        pytest.skip(message)
    network = Network()
    try:
        yield network.open()
    finally:
        network.close()
