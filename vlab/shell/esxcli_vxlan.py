"""NSX's host views in esxcli: ``esxcli network vswitch dvs vmware vxlan
...``, the VXLAN state of a prepared host as NSX for vSphere shows it (the
tables its controller pushed and the host uses), from the running lab's NSX
controller tables (``nsx.json``, ``controller.nsx``).

    vxlan list                                        the VXLAN-prepared VDS
    vxlan network list --vds-name VDS                 its logical switches
    vxlan network vtep|mac|arp list --vds-name VDS --vxlan-id VNI

A host's VTEP and MAC tables hold the *other* hosts (where to send a frame
for a remote VM); the ARP table is the logical switch's (ARP suppression
answers from it). Unicast replication: no multicast group, so the
Multicast IP column reads N/A and MTEPs (NSX's UTEPs) are flagged. ESXi's
Flags columns (its entries' internal state bits) are left out: the testbed
has no such state to show.
"""

from __future__ import annotations

from ipaddress import IPv4Network

from .esxcli_output import Command, EsxcliError, Output, Table
from .hostfacts import HostFacts

VDS = (("--vds-name",), "vds_name", True, "The name of the VDS.")
VNI = (("--vxlan-id",), "vxlan_id", True, "The VXLAN ID (VNI) of the logical switch.")


def _tables(f: HostFacts) -> dict:
    from .snapshot import nsx_tables  # snapshot reads host facts itself

    return nsx_tables(f.ctl)


def vtep_vmk(f: HostFacts):
    vmk = next((v for v in f.esx.vmkernel if v.stack == "vxlan"), None)
    if vmk is None:
        raise EsxcliError(f"{f.name} is not prepared for VXLAN (no vmk in the vxlan netstack)")
    return vmk, f.switch_of(vmk.name)


def _vds(f: HostFacts, name: str):
    vmk, b = vtep_vmk(f)
    if name != b.bridge:
        raise EsxcliError(f"VDS {name} is not VXLAN-prepared on {f.name} (its VTEP is on {b.bridge})")
    return vmk, b


def _network(f: HostFacts, a) -> tuple[dict, str]:
    vmk, b = _vds(f, a.vds_name)
    for ls in _tables(f).values():
        if ls["vni"] == a.vxlan_id:
            return ls, str(vmk.ip.network)
    raise EsxcliError(f"VXLAN ID {a.vxlan_id} is not a logical switch of this transport zone")


def _local_ports(f: HostFacts, logical_switch: str) -> int:
    return sum(1 for b in f.bindings for p in b.logical_ports() if p.logical_switch == logical_switch)


def _remote(f: HostFacts, entries: list[dict]) -> list[dict]:
    return [e for e in entries if e["host"] != f.name]


def _neighbour(f: HostFacts, ip) -> str:
    """The MAC the host's ARP cache holds for ``ip`` (N/A before it ARPed)."""
    if ip is None:
        return "N/A"
    found = [n for n in f.ip_json(f"neigh show to {ip}") if n.get("lladdr")]
    return found[0]["lladdr"] if found else "N/A"


def _controller(f: HostFacts, b) -> str:
    """The bridge's controller target and whether the connection is up."""
    target = f.ctl.ovs(f.name).vsctl("get-controller", b.bridge).strip() or "none"
    up = f"{b.dpid:016x}" in f.applied.get("connected", [])
    return f"{target} ({'up' if up else 'down'})"


def vxlan_list(f: HostFacts, a) -> Output:
    vmk, b = vtep_vmk(f)
    tables = _tables(f)
    row = {
        "VDS Name": b.bridge,
        "VDS ID": f"{b.dpid:016x}",
        "MTU": b.switch.mtu,
        "Segment ID": str(vmk.ip.network.network_address),
        "Gateway IP": str(vmk.gateway) if vmk.gateway else "0.0.0.0",
        "Gateway MAC": _neighbour(f, vmk.gateway),
        "Network Count": len(tables),
        "Vmknic Count": sum(1 for v in f.esx.vmkernel if v.stack == "vxlan"),
    }
    return Table(tuple(row), [row])


def network_list(f: HostFacts, a) -> Output:
    _, b = _vds(f, a.vds_name)
    connection = _controller(f, b)
    rows = []
    for name, ls in sorted(_tables(f).items(), key=lambda kv: kv[1]["vni"]):
        control = "Enabled (multicast proxy" + (",ARP proxy)" if ls["arp_suppression"] else ")")
        rows.append(
            {
                "VXLAN ID": ls["vni"],
                "Multicast IP": "N/A (headend replication)",
                "Control Plane": control,
                "Controller Connection": connection,
                "Port Count": _local_ports(f, name),
                "MAC Entry Count": len(_remote(f, ls["mac_table"])),
                "ARP Entry Count": len(ls["arp_table"]),
                "VTEP Count": len(_remote(f, ls["vtep_table"])),
            }
        )
    return Table(tuple(rows[0]) if rows else ("VXLAN ID",), rows)


def vtep_list(f: HostFacts, a) -> Output:
    ls, segment = _network(f, a)
    rows = [
        {
            "IP": v["vtep_ip"],
            "Segment ID": str(IPv4Network(v["segment"]).network_address),
            # A remote segment's UTEP: this host replicates BUM frames to it.
            "Is MTEP": v["utep"] and v["segment"] != segment,
        }
        for v in _remote(f, ls["vtep_table"])
    ]
    return Table(("IP", "Segment ID", "Is MTEP"), rows)


def mac_list(f: HostFacts, a) -> Output:
    ls, segment = _network(f, a)
    vmk, _ = vtep_vmk(f)
    # The outer destination MAC the host's VTEP puts on the wire: the remote
    # VTEP's own in its segment, the gateway's (from the ARP cache) across one.
    outer = {
        v["vtep_ip"]: v["vtep_mac"] if v["segment"] == segment else _neighbour(f, vmk.gateway)
        for v in ls["vtep_table"]
    }
    rows = [
        {"Inner MAC": m["mac"], "Outer MAC": outer.get(m["vtep_ip"], "N/A"), "Outer IP": m["vtep_ip"]}
        for m in _remote(f, ls["mac_table"])
    ]
    return Table(("Inner MAC", "Outer MAC", "Outer IP"), rows)


def arp_list(f: HostFacts, a) -> Output:
    ls, _ = _network(f, a)
    rows = [{"IP": e["ip"], "MAC": e["mac"]} for e in ls["arp_table"]]
    return Table(("IP", "MAC"), rows)


PREFIX = ("network", "vswitch", "dvs", "vmware", "vxlan")
COMMANDS: dict[tuple[str, ...], Command] = {
    PREFIX + ("list",): Command(vxlan_list, help="List the VXLAN-prepared VDS of this host."),
    PREFIX + ("network", "list"): Command(
        network_list, (VDS,), "List the VXLAN networks (logical switches)."
    ),
    PREFIX + ("network", "vtep", "list"): Command(
        vtep_list, (VDS, VNI), "List the remote VTEPs of a VXLAN network."
    ),
    PREFIX + ("network", "mac", "list"): Command(
        mac_list, (VDS, VNI), "List the remote MACs of a VXLAN network."
    ),
    PREFIX + ("network", "arp", "list"): Command(
        arp_list, (VDS, VNI), "List the ARP entries of a VXLAN network."
    ),
}
