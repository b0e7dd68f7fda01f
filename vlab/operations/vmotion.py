"""vMotion and reconnect, the testbed's side: a VM's vNICs change virtual port.

``vmotion`` moves a running VM to another host in the steps of the protocol
described in ``controller.vmotion`` (which owns step 6, the notifications
sent when the VM resumes): 1. its ports leave the source's vSwitch (the
stun starts), 2. the vNIC backends move into the destination's namespace,
3. its distributed-firewall connections are exported from the source's
conntrack, 4. one request to the controller carries placement, move options
and DFW sessions, and returns once every switch has it, 5. after the stun
time the vNICs are plugged into the destination's vSwitch with their old
port numbers, each under the traffic shaping of its port group on the
destination. The guest keeps its interface, MAC, IP and TCP sessions.

``reconnect`` gives a VM's vNICs new virtual ports on the same host (as a
power cycle or a reconnect does), which can change their port-ID teaming
uplink.
"""

from __future__ import annotations

import itertools
import time
from typing import TYPE_CHECKING

from vlab import naming
from vlab.bindings import conntrack_zones, default_placement, dfw_protected_vms
from vlab.control import MAX_RESPONSE_S, QUERY_SOURCE, placement_of
from vlab.lab.resolve import overlay_switch, switch_of_port_group
from vlab.lab.shaping import tc_replace, vnic_qdiscs
from vlab.ovs import KEEP_QDISC_RECORD, keep_qdisc

from .errors import OperationError

if TYPE_CHECKING:
    from .labcontrol import LabControl

_SEQ = itertools.count(1)  # with the wall clock: every move's seq is unique


def move_seq() -> str:
    """A new move's ``seq``: unique, so a second move of a port is announced too."""
    return f"{time.time():.6f}-{next(_SEQ)}"


def connected(seq: str) -> dict:
    """The ``moves`` entry of a vNIC connected to a new port on its host
    (reconnect, a new network): as ESXi does whenever a vNIC connects, the
    controller sends its notify-switches RARP once the port is up. No IGMP
    query: the guest's memberships did not move to another host."""
    return {"seq": seq, "reason": "connect", "igmp_query": False}


def vnic_ports(vm) -> list[tuple[str, object]]:
    """(vSwitch port name, vNIC) of each of ``vm``'s vNICs."""
    return [(naming.vnic_port(vm.name, nic.name), nic) for nic in vm.vnics]


def switch_of(ctl: "LabControl", host_name: str, nic):
    """The vSwitch of ``host_name`` a vNIC plugs into: its port group's,
    or for a logical switch the one carrying the host's VTEP."""
    return switch_of_in(ctl.lab, ctl.esxi(host_name), nic)


def switch_of_in(lab, esx, nic):
    """``switch_of`` in ``lab``, on its ESXi host ``esx``."""
    if nic.logical_switch is not None:
        sw = overlay_switch(lab, esx)
        if sw is None:
            raise OperationError(f"{esx.name} has no VTEP for logical switch {nic.logical_switch!r}")
        return sw
    try:
        return switch_of_port_group(lab, esx, nic.port_group)[0]
    except KeyError:
        raise OperationError(f"{esx.name} has no port group {nic.port_group!r}") from None


def vmotion(
    ctl: "LabControl",
    vm_name: str,
    dest: str,
    stun_s: float = 0.1,
    igmp_query: bool = True,
    max_response_s: float = MAX_RESPONSE_S,
    query_source: str = QUERY_SOURCE,
) -> dict:
    """Move ``vm_name`` to ``dest``; returns when it runs there (times in
    ``time.time()`` seconds: stun start and resume)."""
    vm, where = ctl.vm(vm_name), ctl.placement()
    ports = vnic_ports(vm)
    src = where[ports[0][0]].host
    ctl.esxi(dest)
    if src == dest:
        raise OperationError(f"{vm_name} already runs on {dest}")
    for _, nic in ports:
        switch_of(ctl, dest, nic)
    # 1. Off the source's vSwitch.
    for port, nic in ports:
        ctl.ovs(src).vsctl("--if-exists", "del-port", switch_of(ctl, src, nic).name, port)
    # The stun starts when the VM is off the source's vSwitch, not when
    # the move was asked for: deleting a port takes an ovs-vsctl round
    # trip (tens of ms on a loaded machine), during which the VM still
    # answers at the source, and a connection it completed there must
    # not count as one opened during the move.
    t_stun = time.time()
    forget_cached_paths(ctl)  # its last frames at the source cannot move its MAC back later
    # 2. The vNIC backends into the destination host.
    for port, _ in ports:
        ctl.sh(src, f"ip link set {port} netns {ctl.pids[dest]}")
    # 3. The VM's distributed-firewall state travels with it (NSX exports
    # the vNIC filter's connection table to the destination host).
    # Each entry keeps the time it had left, as an absolute expiry: the
    # imported state ages out when the entry it came from would have.
    sessions = {}
    if vm_name in dfw_protected_vms(ctl.lab):
        zones = conntrack_zones(ctl.lab)
        exported = time.time()
        for port, _ in ports:
            sessions[port] = [
                [*entry[:5], None if entry[5] is None else exported + entry[5]]
                for entry in ctl.ovs(src).conntrack(zones[port])
            ]
    seq = move_seq()

    def edit(want: dict) -> None:
        """Under the desired lock: another session's change made meanwhile stays."""
        for port, _ in ports:
            want.setdefault("placement", {})[port] = {"host": dest, "ofport": where[port].ofport}
            want.setdefault("moves", {})[port] = {
                "seq": seq,
                "igmp_query": igmp_query,
                "max_response_s": max_response_s,
                "query_source": query_source,
            }
        if sessions:
            want.setdefault("dfw_sessions", {}).update(sessions)

    # 4. The destination is programmed before the VM resumes there.
    ctl.request_change(edit)
    programmed = time.time()
    # 5. The stun time, then the VM resumes on the destination's vSwitch
    # (step 6, its notifications, is the controller's, on port up).
    remaining = stun_s - (time.time() - t_stun)
    if remaining > 0:
        time.sleep(remaining)  # the configured stun time (model, not polling)
    plug(ctl, dest, vm_name, ports, {p: where[p].ofport for p, _ in ports})
    return {
        "vm": vm_name,
        "from": src,
        "to": dest,
        "stun_start": t_stun,
        "programmed": programmed,
        "resumed": time.time(),
        "stun_s": stun_s,
    }


def forget_cached_paths(ctl: "LabControl") -> None:
    """The physical switches drop their cached datapath flows: called once
    a vNIC has left its port and before it gets its new one (vMotion,
    reconnect, a new network).

    A hardware switch learns a source MAC from every frame. An OVS bridge
    learns from a cached flow's frames only when its revalidator pushes
    their statistics, up to 500 ms later; for the frames the vNIC sent just
    before it left, that push can come after its first frames from a new
    uplink and move its MAC back to the old one, whose replies the vSwitch
    then drops (reverse teaming). Measured on two-hosts: 21 of 40 moves
    lost the first 1-3 of the pings 0.2 s apart that followed. Purged here,
    the push happens while the old uplink is still right, and the vNIC's
    first frame from the new one is an upcall, learned at once."""
    ctl.ovs(naming.FABRIC_NODE).appctl("revalidator/purge")


def plug(
    ctl: "LabControl", host: str, vm_name: str, ports: list[tuple[str, object]], ofports: dict[str, int]
) -> None:
    for port, nic in ports:
        sw = switch_of(ctl, host, nic)
        # Link up before OVS opens the port: the port then appears up at
        # once (OVS notices a later carrier change on a re-used name late).
        ctl.sh(host, f"ethtool -K {port} tx off >/dev/null 2>&1; ip link set {port} mtu {sw.mtu} up")
        # The port group's traffic shaping on this host, both directions,
        # before the port passes a frame (a standard port group's policy
        # is per host, and a moved veth has lost its qdisc).
        for q in vnic_qdiscs(ctl.lab, ctl.esxi(host), vm_name, nic):
            ctl.sh(q.node, tc_replace(q.dev, q.qdisc))
        ctl.ovs(host).vsctl(
            "add-port",
            sw.name,
            port,
            "--",
            "set",
            "interface",
            port,
            f"ofport_request={ofports[port]}",
            f"mtu_request={sw.mtu}",
            *KEEP_QDISC_RECORD,
            *keep_qdisc(port),
        )


def reconnect(ctl: "LabControl", vm_name: str) -> dict[str, int]:
    """Plug the VM's vNICs into new virtual ports (new port IDs)."""
    vm = ctl.vm(vm_name)
    ports = vnic_ports(vm)
    host = ctl.placement()[ports[0][0]].host
    for port, nic in ports:
        ctl.ovs(host).vsctl("--if-exists", "del-port", switch_of(ctl, host, nic).name, port)
    forget_cached_paths(ctl)
    seq, new = move_seq(), {}

    def edit(want: dict) -> None:
        """The new port numbers, chosen under the desired lock from the
        placement as it stands: two reconnects never take the same one."""
        where = {**default_placement(ctl.lab), **placement_of(want)}
        candidate = max(p.ofport for p in where.values()) + 1
        for port, _ in ports:
            new[port] = candidate
            candidate += 1
            want.setdefault("placement", {})[port] = {"host": host, "ofport": new[port]}
            want.setdefault("moves", {})[port] = connected(seq)

    ctl.request_change(edit)
    plug(ctl, host, vm_name, ports, new)
    return new
