"""``esxcli network ...`` on an emulated ESXi host: ESXi's namespaces,
options and output layouts (a table, or a list of key: value structures),
the values from the running lab (``hostfacts``).

``run(ctl, host, argv)`` is the whole command; ``COMMANDS`` maps each
namespace path to its options and its view, so usage and "Available
Namespaces" come from the same table the commands run from.
"""

from __future__ import annotations

import argparse
import sys
from ipaddress import IPv4Interface
from typing import Optional, TextIO

from controller.beacon import BEACON_INTERVAL_S, MISSED_BEACONS
from vlab.bindings import dfw_protected_vms
from vlab.lab.model import Security, Shaping, Teaming
from vlab.lab.resolve import effective_security, effective_shaper, effective_teaming
from vlab.operations import OperationError
from vlab.vmkernel import STACK_TABLE

from . import esxcli_config, esxcli_vxlan
from .argv import raising_parser
from .esxcli_output import Command, EsxcliError, Output, Structs, Table
from .hostfacts import FAILURE_DETECTION, LOAD_BALANCING, NETSTACK, STACK_OF, HostFacts


# -- views --------------------------------------------------------------------------
def nic_list(f: HostFacts, a) -> Output:
    cols = ("Name", "PCI Device", "Driver", "Admin Status", "Link Status", "Speed", "Duplex")
    return Table(cols + ("MAC Address", "MTU", "Description"), f.nics())


def _standard_models(f: HostFacts) -> dict:
    return {sw.name: sw for sw in f.esx.vswitches}


def _switch(f: HostFacts, name: Optional[str], kind: str):
    switches = [b for b in f.bindings if b.switch.kind == kind]
    if name is None:
        return switches
    found = [b for b in switches if b.bridge == name]
    if not found:
        raise EsxcliError(
            f"Unable to find vswitch {name}" if kind == "standard" else f"Unable to find DVS {name}"
        )
    return found


def vswitch_standard_list(f: HostFacts, a) -> Output:
    models = _standard_models(f)
    items = []
    for b in _switch(f, a.vswitch_name, "standard"):
        beacon = effective_teaming(b.switch.uplinks, models[b.bridge].teaming, Teaming()).failure_detection
        using = [pg.name for pg in b.switch.port_groups if pg.teaming.failure_detection == "beacon_probing"]
        items.append(
            (
                b.bridge,
                [
                    ("Name", b.bridge),
                    ("Class", "cswitch"),
                    ("Used Ports", f.used_ports(b)),
                    ("MTU", b.switch.mtu),
                    ("CDP Status", "down"),
                    ("Beacon Enabled", beacon == "beacon_probing" or bool(using)),
                    ("Beacon Interval", f"{BEACON_INTERVAL_S:g}"),
                    ("Beacon Threshold", MISSED_BEACONS),
                    ("Beacon Required By", using),
                    ("Uplinks", list(b.switch.uplinks)),
                    ("Portgroups", [pg.name for pg in b.switch.port_groups]),
                ],
            )
        )
    return Structs(items)


def portgroup_list(f: HostFacts, a) -> Output:
    rows = []
    for b in _switch(f, None, "standard"):
        for pg in b.switch.port_groups:
            clients = sum(1 for p in b.ports if p.port_group == pg.name)
            rows.append(
                {"Name": pg.name, "Virtual Switch": b.bridge, "Active Clients": clients, "VLAN ID": pg.vlan}
            )
    return Table(("Name", "Virtual Switch", "Active Clients", "VLAN ID"), rows)


def _failover_fields(t) -> list[tuple[str, object]]:
    return [
        ("Load Balancing", LOAD_BALANCING[t.policy]),
        ("Network Failure Detection", FAILURE_DETECTION[t.failure_detection]),
        ("Notify Switches", t.notify_switches),
        ("Failback", t.failback),
        ("Active Adapters", list(t.active)),
        ("Standby Adapters", list(t.standby)),
        ("Unused Adapters", list(t.unused)),
    ]


def _security_fields(s) -> list[tuple[str, object]]:
    return [
        ("Allow Promiscuous", s.promiscuous == "accept"),
        ("Allow MAC Address Change", s.mac_changes == "accept"),
        ("Allow Forged Transmits", s.forged_transmits == "accept"),
    ]


def _shaping_fields(shaper) -> list[tuple[str, object]]:
    if shaper is None:
        return [
            ("Enabled", False),
            ("Average Bandwidth", "0 Kbps"),
            ("Peak Bandwidth", "0 Kbps"),
            ("Burst Size", "0 Kib"),
        ]
    return [
        ("Enabled", True),
        ("Average Bandwidth", f"{shaper.average_kbps} Kbps"),
        ("Peak Bandwidth", f"{shaper.peak_kbps} Kbps"),
        ("Burst Size", f"{shaper.burst_kb} Kib"),
    ]


def vswitch_policy(policy: str):
    def view(f: HostFacts, a) -> Output:
        (b,) = _switch(f, a.vswitch_name, "standard")
        sw = _standard_models(f)[b.bridge]
        if policy == "failover":
            return Structs([(None, _failover_fields(effective_teaming(sw.uplinks, sw.teaming, Teaming())))])
        if policy == "security":
            return Structs(
                [(None, _security_fields(effective_security("standard", sw.security, Security())))]
            )
        return Structs([(None, _shaping_fields(effective_shaper(sw.shaping)))])

    return view


def _portgroup(f: HostFacts, name: str):
    for sw in f.esx.vswitches:
        for pg in sw.port_groups:
            if pg.name == name:
                b = next(b for b in f.bindings if b.bridge == sw.name)
                return sw, pg, b.switch.port_group(name)
    raise EsxcliError(f"Invalid portgroup: {name}")


def portgroup_policy(policy: str):
    def view(f: HostFacts, a) -> Output:
        sw, pg, effective = _portgroup(f, a.portgroup_name)
        if policy == "failover":
            t = pg.teaming
            order = any(x is not None for x in (t.active, t.standby, t.unused))
            overrides = [
                ("Override Vswitch Load Balancing", t.policy is not None),
                ("Override Vswitch Network Failure Detection", t.failure_detection is not None),
                ("Override Vswitch Notify Switches", t.notify_switches is not None),
                ("Override Vswitch Failback", t.failback is not None),
                ("Override Vswitch Uplinks", order),
            ]
            return Structs([(None, _failover_fields(effective.teaming) + overrides)])
        if policy == "security":
            s = pg.security
            overrides = [
                ("Override Vswitch Allow Promiscuous", s.promiscuous is not None),
                ("Override Vswitch Allow MAC Address Change", s.mac_changes is not None),
                ("Override Vswitch Allow Forged Transmits", s.forged_transmits is not None),
            ]
            return Structs([(None, _security_fields(effective.security) + overrides)])
        fields = _shaping_fields(effective.shaping.ingress)
        return Structs([(None, fields + [("Override Vswitch Shaping", pg.shaping != Shaping())])])

    return view


def dvs_list(f: HostFacts, a) -> Output:
    items = []
    for b in _switch(f, a.vds_name, "distributed"):
        clients = [
            [
                ("Client", p.client),
                ("DVPortgroup ID", p.binding.port_group or ""),
                ("In Use", True),
                ("Port ID", p.num),
            ]
            for p in f.ports()
            if p.switch == b.bridge
        ]
        fields = [
            ("Name", b.bridge),
            ("VDS ID", f"{b.dpid:016x}"),
            ("Class", "cswitch"),
            ("Used Ports", f.used_ports(b)),
            ("MTU", b.switch.mtu),
            ("CDP Status", "down"),
            ("Uplinks", list(b.switch.uplinks)),
            ("VMware Branded", True),
        ]
        lines = [("DVPort", "")]
        for c in clients:
            lines += [(f"      {k}", v) for k, v in c] + [("", "")]
        items.append((b.bridge, fields + lines[:-1]))
    return Structs(items)


def _vmks(f: HostFacts, name: Optional[str] = None):
    vmks = [v for v in f.esx.vmkernel if name in (None, v.name)]
    if name is not None and not vmks:
        raise EsxcliError(f"Unable to find vmknic {name}")
    return vmks


def ip_interface_list(f: HostFacts, a) -> Output:
    items = []
    ports = {p.name: p for p in f.ports()}
    for v in _vmks(f, getattr(a, "interface_name", None)):
        b = f.switch_of(v.name)
        link = f.links().get(v.name, {})
        distributed = b.switch.kind == "distributed"
        items.append(
            (
                v.name,
                [
                    ("Name", v.name),
                    ("MAC Address", ports[v.name].mac),
                    ("Enabled", "UP" in link.get("flags", [])),
                    ("Portset", f"DvsPortset-{b.switch.index}" if distributed else b.bridge),
                    ("Portgroup", "N/A" if distributed else v.port_group),
                    ("Netstack Instance", NETSTACK[v.stack]),
                    ("VDS Name", b.bridge if distributed else "N/A"),
                    ("VDS Port", ports[v.name].binding.ofport if distributed else "N/A"),
                    ("MTU", link.get("mtu", b.switch.mtu)),
                    ("Port ID", ports[v.name].num),
                ],
            )
        )
    return Structs(items)


def ip_interface_ipv4_get(f: HostFacts, a) -> Output:
    rows = []
    for v in _vmks(f, a.interface_name):
        ip = f.vmk_ipv4(v.name) or IPv4Interface("0.0.0.0/0")  # read from the vmk, as configured now
        rows.append(
            {
                "Name": v.name,
                "IPv4 Address": str(ip.ip),
                "IPv4 Netmask": str(ip.netmask),
                "IPv4 Broadcast": str(ip.network.broadcast_address),
                "Address Type": "STATIC",
                "Gateway": str(v.gateway) if v.gateway else "0.0.0.0",
                "DHCP DNS": False,
            }
        )
    return Table(
        ("Name", "IPv4 Address", "IPv4 Netmask", "IPv4 Broadcast", "Address Type", "Gateway", "DHCP DNS"),
        rows,
    )


def _stacks(f: HostFacts) -> list[str]:
    used = {v.stack for v in f.esx.vmkernel}
    return [s for s in NETSTACK if s == "default" or s in used]


def netstack_list(f: HostFacts, a) -> Output:
    return Structs(
        [(NETSTACK[s], [("Key", NETSTACK[s]), ("Name", NETSTACK[s]), ("State", 4660)]) for s in _stacks(f)]
    )


def _stack_named(f: HostFacts, name: str) -> str:
    if name not in STACK_OF or STACK_OF[name] not in _stacks(f):
        raise EsxcliError(f"Netstack instance {name} does not exist (esxcli network ip netstack list)")
    return STACK_OF[name]


def route_ipv4_list(f: HostFacts, a) -> Output:
    stack = _stack_named(f, a.netstack or "defaultTcpipStack")
    vmks = {v.name for v in f.esx.vmkernel if v.stack == stack or (stack == "default" and v.stack == "vxlan")}
    table = STACK_TABLE.get(stack, "main")
    rows = []
    for r in f.ip_json(f"route show table {table}"):
        if r.get("dev") not in vmks:
            continue
        net = IPv4Interface(
            "0.0.0.0/0" if r["dst"] == "default" else r["dst"] if "/" in r["dst"] else r["dst"] + "/32"
        )
        rows.append(
            {
                "Network": "default" if r["dst"] == "default" else str(net.network.network_address),
                "Netmask": str(net.netmask),
                "Gateway": r.get("gateway", "0.0.0.0"),
                "Interface": r["dev"],
                "Source": "MANUAL",
            }
        )
    return Table(("Network", "Netmask", "Gateway", "Interface", "Source"), rows)


def neighbor_list(f: HostFacts, a) -> Output:
    vmks = {v.name for v in f.esx.vmkernel}
    rows = [
        {
            "Neighbor": n["dst"],
            "Mac Address": n.get("lladdr", "(incomplete)"),
            "Vmknic": n["dev"],
            "State": (n.get("state") or [""])[0],
            "Type": "Static" if "PERMANENT" in (n.get("state") or []) else "Dynamic",
        }
        for n in f.ip_json("neigh show")
        if n.get("dev") in vmks and "FAILED" not in (n.get("state") or [])
    ]
    return Table(("Neighbor", "Mac Address", "Vmknic", "State", "Type"), rows)


def vm_list(f: HostFacts, a) -> Output:
    rows = []
    for vm, ports in sorted(f.vm_ports().items()):
        networks = sorted({p.binding.port_group or f"vxw-{p.binding.logical_switch}" for p in ports})
        rows.append(
            {"World ID": f.world_id(vm), "Name": vm, "Num Ports": len(ports), "Networks": ", ".join(networks)}
        )
    return Table(("World ID", "Name", "Num Ports", "Networks"), rows)


def vm_port_list(f: HostFacts, a) -> Output:
    vms = {f.world_id(vm): (vm, ports) for vm, ports in f.vm_ports().items()}
    if a.world_id not in vms:
        raise EsxcliError(f"Invalid World ID {a.world_id} (esxcli network vm list)")
    vm, ports = vms[a.world_id]
    uplinks = {p.name: p.num for p in f.ports() if p.kind == "uplink"}
    filtered = vm in dfw_protected_vms(f.ctl.lab)
    items = []
    for p in ports:
        b = f.switch_of(p.name)
        team = f.pinned(p.name)
        items.append(
            (
                None,
                [
                    ("Port ID", p.num),
                    ("vSwitch", b.bridge),
                    ("Portgroup", p.binding.port_group or f"vxw-{p.binding.logical_switch}"),
                    ("DVPort ID", p.binding.ofport if b.switch.kind == "distributed" else ""),
                    ("MAC Address", p.mac),
                    ("IP Address", f.guest_ipv4(p.name)),
                    ("Team Uplink", team or "void"),
                    ("Uplink Port ID", uplinks.get(team, 0)),
                    ("Active Filters", "vmware-sfw" if filtered else ""),
                ],
            )
        )
    return Structs(items)


VSWITCH = (("-v", "--vswitch-name"), "vswitch_name", True, "The name of the virtual switch.")
PORTGROUP = (("-p", "--portgroup-name"), "portgroup_name", True, "The name of the port group.")

COMMANDS: dict[tuple[str, ...], Command] = {
    ("network", "nic", "list"): Command(
        nic_list, help="List the physical NICs currently installed and loaded."
    ),
    ("network", "vswitch", "standard", "list"): Command(
        vswitch_standard_list,
        ((("-v", "--vswitch-name"), "vswitch_name", False, "Limit the output to this virtual switch."),),
        "List the virtual switches current on the ESXi host.",
    ),
    ("network", "vswitch", "standard", "portgroup", "list"): Command(
        portgroup_list, help="List all of the port groups currently on the system."
    ),
    **{
        ("network", "vswitch", "standard", "policy", policy, "get"): Command(
            vswitch_policy(policy), (VSWITCH,), f"Get the {policy} policy of a virtual switch."
        )
        for policy in ("failover", "security", "shaping")
    },
    **{
        ("network", "vswitch", "standard", "portgroup", "policy", policy, "get"): Command(
            portgroup_policy(policy), (PORTGROUP,), f"Get the {policy} policy of a port group."
        )
        for policy in ("failover", "security", "shaping")
    },
    ("network", "vswitch", "dvs", "vmware", "list"): Command(
        dvs_list,
        ((("-v", "--vds-name"), "vds_name", False, "Limit the output to this distributed switch."),),
        "List the VMware vSphere Distributed Switches currently configured on the ESXi host.",
    ),
    ("network", "ip", "interface", "list"): Command(
        ip_interface_list,
        ((("-i", "--interface-name"), "interface_name", False, "Limit the output to this VMkernel NIC."),),
        "List the VMkernel network interfaces currently known to the system.",
    ),
    ("network", "ip", "interface", "ipv4", "get"): Command(
        ip_interface_ipv4_get,
        ((("-i", "--interface-name"), "interface_name", False, "Limit the output to this VMkernel NIC."),),
        "Get IPv4 settings for VMkernel network interfaces.",
    ),
    ("network", "ip", "netstack", "list"): Command(
        netstack_list, help="List the netstack instances on the system."
    ),
    ("network", "ip", "route", "ipv4", "list"): Command(
        route_ipv4_list,
        (
            (
                ("-N", "--netstack"),
                "netstack",
                False,
                "The network stack instance; default: defaultTcpipStack.",
            ),
        ),
        "List configured IPv4 routes.",
    ),
    ("network", "ip", "neighbor", "list"): Command(neighbor_list, help="List ARP table entries."),
    ("network", "vm", "list"): Command(vm_list, help="List networking information for the VMs on this host."),
    ("network", "vm", "port", "list"): Command(
        vm_port_list,
        ((("-w", "--world-id"), "world_id", True, "The World ID of the VM (esxcli network vm list)."),),
        "List the ports of one VM and their networking information.",
    ),
    **esxcli_config.COMMANDS,
    **esxcli_vxlan.COMMANDS,
}


def _namespaces(prefix: tuple[str, ...]) -> list[str]:
    return sorted(
        {path[len(prefix)] for path in COMMANDS if path[: len(prefix)] == prefix and len(path) > len(prefix)}
    )


def usage(prefix: tuple[str, ...]) -> str:
    """What esxcli prints for an incomplete or unknown namespace."""
    names = _namespaces(prefix)
    leaf = [n for n in names if prefix + (n,) in COMMANDS]
    lines = [f"Usage: esxcli {' '.join(prefix)} {{cmd}} [cmd options]".replace("  ", " "), ""]
    if leaf:
        lines.append("Available Commands:")
        lines += [f"  {n:<22}{COMMANDS[prefix + (n,)].help}" for n in leaf]
    others = [n for n in names if n not in leaf]
    if others:
        lines.append("Available Namespaces:")
        lines += [f"  {n}" for n in others]
    return "\n".join(lines)


def _parse(path: tuple[str, ...], cmd: Command, argv: list[str]) -> argparse.Namespace:
    p = raising_parser(f"esxcli {' '.join(path)}", EsxcliError)
    for flags, dest, required, help_ in cmd.options:
        flag = {"nargs": "?", "const": "true"} if dest in esxcli_config.FLAGS else {}
        p.add_argument(
            *flags,
            dest=dest,
            required=required,
            help=help_,
            type=int if dest in ("world_id", "vxlan_id") else str,
            **flag,
        )
    return p.parse_args(argv)


def run(ctl, host: str, argv: list[str], out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """esxcli on ``host``; its exit code (ESXi's: 0, or 1 with ``Error: ...``)."""
    path: tuple[str, ...] = ()
    while len(path) < len(argv) and path not in COMMANDS and argv[len(path)] in _namespaces(path):
        path += (argv[len(path)],)
    rest = argv[len(path) :]
    if path not in COMMANDS:
        unknown = rest[0] if rest and rest[0] not in ("-h", "--help") else None
        if unknown is not None:
            print(f"Error: Unknown command or namespace {' '.join(path + (unknown,))}", file=err)
        print(usage(path), file=err if unknown or path == () else out)
        return 1 if unknown or path == () else 0
    if rest in (["--help"], ["-h"]):
        print(_help(path), file=out)
        return 0
    try:
        a = _parse(path, COMMANDS[path], rest)
        result = COMMANDS[path].view(HostFacts(ctl, host), a)
    except EsxcliError as exc:
        print(f"Error: {exc}", file=err)
        if exc.usage:
            print(_help(path), file=err)
        return 1
    except OperationError as exc:
        print(f"Error: {exc}", file=err)
        return 1
    text = result.text()
    if text:
        print(text, file=out)
    return 0


def _help(path: tuple[str, ...]) -> str:
    cmd = COMMANDS[path]
    lines = [
        f"Usage: esxcli {' '.join(path)} [cmd options]",
        "",
        "Description:",
        f"  {path[-1]:<22}{cmd.help}",
    ]
    if cmd.options:
        lines += ["", "Cmd options:"]
        lines += [
            f"  {'|'.join(flags)}=<{dest.split('_')[-1]}>  {h}{' (required)' if req else ''}"
            for flags, dest, req, h in cmd.options
        ]
    return "\n".join(lines)
