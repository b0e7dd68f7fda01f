"""An ESXi host: a network namespace with its own Open vSwitch instance.

Each host runs its own ovsdb-server and ovs-vswitchd (``vlab.ovs``; why
one per host: README, "Design notes"), with one bridge per vSwitch
(standard or distributed member), in fail mode ``secure`` and connected to
the controller before any port is added, so no frame is switched before the
controller programmed the bridge. Its ports, numbered by ``vlab.bindings``:

* uplinks vmnicN (their htb shaping kept, ``vlab.ovs.keep_qdisc``, as every
  port's traffic shaping qdisc is); a distributed switch's LAG members are
  one OVS bond with LACP (``lag_commands``);
* VMkernel adapters as internal ports, whose addresses and routing tables
  (the VMkernel TCP/IP stacks) live in the host namespace (``vlab.vmkernel``);
* VM vNIC backends (veths whose other ends are in the VMs);
* the VXLAN tunnel port of the host's VTEP (OVS userspace VXLAN: outer
  destination and VNI from each flow);
* port mirroring tunnel ports (ERSPAN types II and III, GRE) of
  distributed switches with remote mirror sessions; the uplinks of such a
  host carry the tc program that writes ERSPAN copies' original VLAN
  (``vlab.operations.erspan_vlan``).
"""

from __future__ import annotations

from vlab import naming
from vlab.bindings import PortBinding, SwitchBinding, mirror_tunnel
from vlab.lab.model import EsxiHost, Lab
from vlab.lab.resolve import HostLag, vtep_of, vteps
from vlab.operations import erspan_vlan
from vlab.operations.errors import OperationError
from vlab.ovs import KEEP_QDISC_RECORD, OvsInstance, keep_qdisc
from vlab.vmkernel import routing_commands

from .readiness import NotReady


def mirror_interface(name: str) -> list[str]:
    """OVS interface settings of a port mirroring tunnel port: ERSPAN type II
    (OVS erspan_ver=1), type III (erspan_ver=2, the port's direction bit) or
    GRE; the destination and the session ID (GRE key) come from each copy's
    flow; the outer source address and the way out from the host's routing
    table (its VMkernel adapters)."""
    tunnel = mirror_tunnel(name)
    if tunnel.encapsulation == "gre":
        extra = []
    elif tunnel.encapsulation == "erspan":
        extra = ["options:erspan_ver=1", "options:erspan_idx=0"]
    else:
        direction = 0 if tunnel.direction == "ingress" else 1  # ERSPAN type III's D bit
        extra = ["options:erspan_ver=2", f"options:erspan_dir={direction}", "options:erspan_hwid=0"]
    kind = "gre" if tunnel.encapsulation == "gre" else "erspan"
    # The key copies carry is set per flow (out_key); mirror ports receive
    # nothing, but OVS refuses two tunnel ports it could not tell apart on
    # receipt (type III's two are equal but for the direction bit), so each
    # gets an in_key of its own.
    keys = [f"options:in_key={tunnel.ofport}", "options:out_key=flow"]
    return [f"type={kind}", "options:remote_ip=flow", *keys, *extra]


def lag_commands(bridge: str, lag: HostLag, members: list[PortBinding], mtu: int) -> list[str]:
    """A LAG's members as one OVS bond with LACP: OVS's own 802.1AX actor
    (LACP runs in the ESXi host, not in vCenter), in the LAG's mode and
    timeout. The bond mode only matters to OVS's NORMAL action, which this
    bridge never uses: the controller's flows pick a member per packet
    (``bundle``) among those LACP has put in the bundle. Created record by
    record, so a LAG with one vmnic is a bond of one (ovs-vsctl's add-bond
    wants two)."""
    port = naming.lag_port(bridge, lag.name)
    # Named rows of this transaction, unique by OpenFlow port number.
    ids = [f"@member{p.ofport}" for p in members]
    ref = f"@lag{members[0].ofport}"
    cmds = []
    for member_ref, p in zip(ids, members):
        cmds += ["--", f"--id={member_ref}", "create", "interface", f"name={p.name}"]
        cmds += [f"ofport_request={p.ofport}", f"mtu_request={mtu}"]
    cmds += [
        "--",
        f"--id={ref}",
        "create",
        "port",
        f"name={port}",
        "interfaces=[" + ",".join(ids) + "]",
        f"lacp={lag.mode}",
        "bond_mode=active-backup",
        f"other_config:lacp-time={lag.timeout}",
        # Keep the members' qdiscs (their link speed's htb): QoS is the port's.
        "qos=@keepqdisc",
        "--",
        "add",
        "bridge",
        bridge,
        "ports",
        ref,
    ]
    return cmds


def _port_commands(host: EsxiHost, bridge: str, p: PortBinding, mtu: int) -> list[str]:
    add = ["--", "add-port", bridge, p.name, "--", "set", "interface", p.name]
    if p.kind == "tunnel":
        # Userspace VXLAN: the outer destination and VNI come from each flow
        # (tun_dst, tun_id); OVS routes the outer packet from the VTEP's
        # address through the VTEP vmk.
        return add + [
            "type=vxlan",
            f"ofport_request={p.ofport}",
            "options:remote_ip=flow",
            "options:key=flow",
            f"options:local_ip={vtep_of(host).ip.ip}",
        ]
    if p.kind == "mirror":
        return add + [*mirror_interface(p.name), f"ofport_request={p.ofport}"]
    cmds = add + [f"ofport_request={p.ofport}", f"mtu_request={mtu}"]
    if p.kind == "vmk":
        cmds += ["type=internal", f'mac="{p.mac}"']
    # Uplinks keep their link speed's htb, vNIC and VMkernel ports their
    # traffic shaping qdiscs (vlab.lab.shaping).
    return cmds + keep_qdisc(p.name)


def bridge_commands(lab: Lab, host: EsxiHost, b: SwitchBinding, controller: str) -> list[str]:
    """One ovs-vsctl transaction that creates vSwitch ``b`` of ``host``,
    connected to ``controller`` (``tcp:IP:PORT``), with all its ports."""
    # Secure fail mode and the controller first: no frame is switched
    # before the controller has programmed the bridge.
    br = b.bridge
    cmds = [
        "--",
        "add-br",
        br,
        "--",
        "set",
        "bridge",
        br,
        f"datapath_type={lab.datapath}",
        "fail_mode=secure",
        "protocols=OpenFlow13",
        f"other_config:datapath-id={b.dpid:016x}",
        "other_config:disable-in-band=true",
        "--",
        "set-controller",
        br,
        controller,
    ]
    bonded = {m for lag in b.switch.lags for m in lag.members}
    for p in b.ports:
        if p.name not in bonded:
            cmds += _port_commands(host, br, p, b.switch.mtu)
    for lag in b.switch.lags:
        members = [b.port(m) for m in lag.members]
        if members:
            cmds += lag_commands(br, lag, members, b.switch.mtu)
    return cmds + list(KEEP_QDISC_RECORD)


def start_esxi(
    inst: OvsInstance, lab: Lab, host: EsxiHost, bindings: tuple[SwitchBinding, ...], controller: str
) -> None:
    """Start ``host``'s OVS instance (the caller holds it, so a failure here
    still stops it) with its vSwitches, and its VMkernel stacks."""
    node = inst.node
    inst.start()
    for b in (b for b in bindings if b.host == host.name):
        inst.vsctl(*bridge_commands(lab, host, b, controller))
        # Reconnect quickly if the controller restarts (default backoff
        # is 8 s). Set on its own: set in the transaction that creates
        # the controller record, OVS kept backing off 2-4 s.
        inst.vsctl("set", "controller", b.bridge, "max_backoff=1000")
        # A port OVS could not add is only an error column and ofport -1:
        # say so now rather than run a switch without it.
        failed = inst.vsctl("--bare", "--columns=name,error", "find", "interface", "ofport=-1").split()
        if failed:
            raise NotReady(f"{host.name}/{b.bridge}: OVS could not add port(s): {' '.join(failed)}")
        for p in b.ports:
            if p.kind == "vmk":
                node.cmd(f"ethtool -K {p.name} tx off >/dev/null 2>&1")
            elif p.kind not in ("tunnel", "mirror"):
                node.cmd(f"ip link set {p.name} mtu {b.switch.mtu} up")
    # The VMkernel TCP/IP stacks: addresses, routing tables, rules.
    transport = tuple(sorted({str(v.ip.network) for v in vteps(lab).values()}))
    commands = list(routing_commands(host, transport))
    if erspan_vlan.rewrites(lab, host):
        try:
            obj = erspan_vlan.build(inst.dir)
        except OperationError as e:
            raise NotReady(f"{host.name}: {e}") from e
        commands += [c for u in host.uplinks for c in erspan_vlan.attach_commands(u.name, obj)]
    for cmd in commands:
        out = node.cmd(f"{cmd} 2>&1; echo rc=$?").strip()
        if not out.endswith("rc=0"):
            raise NotReady(f"{host.name}: `{cmd}` failed: {out}")
