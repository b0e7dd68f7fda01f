"""What hostd/vmx know about each vNIC: the guest driver's receive filter.

On ESXi the guest's driver tells the hypervisor which unicast address to
accept (the effective MAC), whether the NIC is promiscuous or all-multicast,
and which multicast MACs to pass; the vSwitch uses exactly that, with no
snooping. Here the guest is a Linux namespace and its vNIC a veth, so the
same facts are read from the guest's own interface: the link's address,
promiscuity count (tcpdump without -p counts too) and all-multicast flag over
netlink (pyroute2), and its link-layer multicast list from the guest's
``/proc/<pid>/net/dev_mcast``. The guest's IPv4 addresses are read too, as
VMware Tools reports them (NSX's IP discovery for its ARP table). Only what the
guest itself does changes them.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Optional

from pyroute2 import IPRoute, netns

from vlab.bindings import GuestNic

LOG = logging.getLogger("vlab.hostd")
IFF_ALLMULTI = 0x200


def _colon(hexmac: str) -> str:
    return ":".join(hexmac[i : i + 2] for i in range(0, 12, 2)).lower()


def multicast_filter(pid: int, ifname: str) -> frozenset[str]:
    """Link-layer multicast addresses ``ifname`` accepts in ``pid``'s namespace."""
    macs = set()
    with open(f"/proc/{pid}/net/dev_mcast") as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 5 and fields[1] == ifname:
                macs.add(_colon(fields[4]))
    return frozenset(macs)


@dataclass
class WatchedNic:
    """One vNIC to observe: the vSwitch port it is, the guest side of it."""

    port: str  # vSwitch port name (vm-vnic)
    pid: int  # a process in the guest's network namespace
    ifname: str  # interface name inside the guest


@contextmanager
def _in_netns(path: str):
    """Run the block with this thread in the network namespace at ``path``
    (setns(2) moves only the calling thread), then move it back."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(path, os.O_RDONLY)
    try:
        netns.setns(target)
        try:
            yield
        finally:
            netns.setns(own)
    finally:
        os.close(target)
        os.close(own)


def rtnl_socket_in(pid: int) -> socket.socket:
    """A route netlink socket bound to ``pid``'s network namespace. A socket
    keeps the namespace it was created in, so the thread visits the guest's
    namespace only for ``socket()``; pyroute2's ``netns=`` would fork a
    helper process per guest instead (~25 ms each: 3 s for 128 guests on
    every controller start)."""
    with _in_netns(f"/proc/{pid}/ns/net"):
        return socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, socket.NETLINK_ROUTE)


class GuestObserver:
    """Reads every watched vNIC's filter state; one netlink socket per guest
    and thread (pyroute2 refuses a given socket from another thread)."""

    def __init__(self, nics: list[WatchedNic]):
        self.nics = nics
        self._local = threading.local()
        self._all: list[IPRoute] = []
        self._lock = threading.Lock()

    def _ipr_for(self, pid: int) -> IPRoute:
        mine = getattr(self._local, "ipr", None)
        if mine is None:
            mine = self._local.ipr = {}
        if pid not in mine:
            mine[pid] = IPRoute(use_socket=rtnl_socket_in(pid))
            with self._lock:
                self._all.append(mine[pid])
        return mine[pid]

    def read(self, nic: WatchedNic) -> Optional[GuestNic]:
        """The guest's current filter state, or None when it cannot be read
        (the guest is gone or the interface does not exist yet)."""
        try:
            ipr = self._ipr_for(nic.pid)
            link = ipr.link("get", ifname=nic.ifname)[0]
            addrs = ipr.get_addr(family=socket.AF_INET, index=link["index"])
            mcast = multicast_filter(nic.pid, nic.ifname)
        except Exception as exc:  # guest gone or not ready: report nothing
            LOG.debug("cannot read %s: %s", nic.port, exc)
            return None
        return GuestNic(
            effective_mac=link.get("IFLA_ADDRESS").lower(),
            promiscuous=(link.get("IFLA_PROMISCUITY") or 0) > 0,
            allmulti=bool(link["flags"] & IFF_ALLMULTI) or (link.get("IFLA_ALLMULTI") or 0) > 0,
            mcast=mcast,
            ipv4=frozenset(a.get_attr("IFA_ADDRESS") for a in addrs),
        )

    def snapshot(self) -> dict[str, GuestNic]:
        out = {}
        for nic in self.nics:
            state = self.read(nic)
            if state is not None:
                out[nic.port] = state
        return out

    def close(self) -> None:
        with self._lock:
            for ipr in self._all:
                ipr.close()
            self._all.clear()
        self._local = threading.local()
