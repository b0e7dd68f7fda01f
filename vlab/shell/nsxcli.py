"""The NSX controller's tables as its CLI lists them: NSX for vSphere's
``show control-cluster logical-switches vtep-table|mac-table|arp-table VNI``,
one block per logical switch, from the tables the testbed's NSX controller
last wrote (``nsx.json``, ``controller.nsx``).

The controller CLI's Connection-ID column (the host's session with the
controller) has no counterpart here; the testbed names the host instead.
A VTEP row marked UTEP is its segment's replicator (unicast mode): a host
in another segment sends a broadcast, unknown-unicast or multicast frame
once to it, and it copies the frame to the rest of its own segment. Each
ARP entry says what taught it (VMware Tools, ARP or DHCP snooping).
"""

from __future__ import annotations

from .textable import render


def tables_text(tables: dict) -> str:
    """Every logical switch's VTEP, MAC and ARP tables, as text."""
    blocks = []
    for name, ls in sorted(tables.items(), key=lambda kv: kv[1]["vni"]):
        vni = ls["vni"]
        suppression = "on" if ls.get("arp_suppression") else "off"
        vteps = [
            {
                "VNI": vni,
                "IP": e["vtep_ip"],
                "Segment": e["segment"],
                "MAC": e["vtep_mac"],
                "Host": e["host"],
                "UTEP": "yes" if e.get("utep") else "",
            }
            for e in ls["vtep_table"]
        ]
        macs = [
            {"VNI": vni, "MAC": e["mac"], "VTEP-IP": e["vtep_ip"], "Host": e["host"]} for e in ls["mac_table"]
        ]
        arps = [
            {"VNI": vni, "IP": e["ip"], "MAC": e["mac"], "Sources": ",".join(e.get("sources") or ())}
            for e in ls["arp_table"]
        ]
        blocks.append(
            "\n".join(
                [
                    f"Logical switch {name} (VNI {vni}), ARP suppression {suppression}",
                    f"# show control-cluster logical-switches vtep-table {vni}",
                    render(vteps, ("VNI", "IP", "Segment", "MAC", "Host", "UTEP")),
                    f"# show control-cluster logical-switches mac-table {vni}",
                    render(macs, ("VNI", "MAC", "VTEP-IP", "Host")),
                    f"# show control-cluster logical-switches arp-table {vni}",
                    render(arps, ("VNI", "IP", "MAC", "Sources")),
                ]
            )
        )
    return "\n\n".join(blocks)
