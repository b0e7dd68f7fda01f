"""Which LAGs can form, from the lab alone: LACP bundles a link only when
both ends speak LACP and at least one end is active (two passive ends wait
for each other forever; a static port channel sends no LACPDU).

The running lab does not use ``why_never_forms`` (each host's Open vSwitch
negotiates LACP for real); the lab's static reachability and ``vlab
check``'s warnings do. ``LAG_HASH_FIELDS`` is shared by the flows and the
check.
"""

from __future__ import annotations

from typing import Optional

from .model import EsxiHost, Lab
from .resolve import HostLag

# The Open vSwitch bundle hash fields of each LAG load balancing mode the
# testbed reproduces (the controller's flows use them; ``vlab check``
# refuses every other mode). The VLAN of a "...Vlan" mode is the port
# group's, constant on a VST port group: it is the hash's basis. Modes that
# hash one direction's TCP/UDP port, destination MACs, the VLAN alone or the
# port ID have no OVS hash field.
LAG_HASH_FIELDS = {
    "srcDestIpTcpUdpPortVlan": "symmetric_l3l4+udp",
    "srcDestIpTcpUdpPort": "symmetric_l3l4+udp",
    "srcDestIpVlan": "symmetric_l3",
    "srcDestIp": "symmetric_l3",
    "srcIpVlan": "nw_src",
    "srcIp": "nw_src",
    "destIpVlan": "nw_dst",
    "destIp": "nw_dst",
    "srcMac": "eth_src",
}


def why_never_forms(lab: Lab, host: EsxiHost, lag: HostLag) -> Optional[str]:
    """Why ``lag`` of ``host`` can never bundle a member, or None when at
    least one member's physical port is in an LACP port channel that can
    negotiate with it."""
    if not lag.members:
        return f"{lag.name} on {host.name} has no vmnic"
    plugs = {u.name: (u.switch, u.port) for u in host.uplinks}
    channels = {(sw.name, p): (sw.name, g) for sw in lab.physical_switches for g in sw.lags for p in g.ports}
    reasons = []
    for vmnic in lag.members:
        switch, port = plugs[vmnic]
        found = channels.get((switch, port))
        if found is None:
            reasons.append(f"{vmnic} ({switch} port {port}) is in no port channel")
        elif found[1].lacp == "off":
            reasons.append(f"{vmnic}'s port channel {switch}/{found[1].name} is static (lacp: off)")
        elif found[1].lacp == "passive" and lag.mode == "passive":
            reasons.append(f"{lag.name} and {switch}/{found[1].name} are both passive")
        else:
            return None
    return f"LAG {lag.name} on {host.name} never forms: " + "; ".join(dict.fromkeys(reasons))
