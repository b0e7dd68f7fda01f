"""Names of everything the testbed creates on the machine.

Every process we start carries ``VLAB_RUN=<run id>`` in its environment and
every file lives under ``/run/vlab/<run id>/``; interfaces live inside our own
namespaces and vanish with them. That is how ``vlab clean`` finds what is ours
and nothing else. Interface names are derived from lab names here, in one
place, so the lab checker can reject names Linux would refuse (> 15 chars).
"""

from __future__ import annotations

import os
import secrets

PREFIX = "vlab"
RUN_ROOT = os.environ.get("VLAB_RUN_ROOT", "/run/vlab")
RUN_ENV = "VLAB_RUN"  # environment marker on every process we start
IFNAMSIZ = 15  # Linux interface name limit (IFNAMSIZ - 1)


def new_run_id() -> str:
    return PREFIX + secrets.token_hex(3)


def vnic_port(vm: str, vnic: str) -> str:
    """The vSwitch-side end of a vNIC's veth, inside the ESXi host namespace."""
    return f"{vm}-{vnic}"


def fabric_port(switch: str, port: int) -> str:
    """A physical switch port, inside the fabric namespace."""
    return f"{switch}-{port}"


def lag_port(switch: str, lag: str) -> str:
    """The OVS bond port of LAG ``lag`` of ``switch`` (a vSwitch or a physical
    switch): unique in its OVS instance, which other switches share. A port,
    not an interface, so the 15-character limit does not apply."""
    return f"{switch}.{lag}"


def virtual_gateway(interface: str) -> str:
    """A router interface's virtual gateway (FHRP) device: a macvlan on it."""
    return f"{interface}v"


# The ESXi shell commands every ESXi host node has on its PATH, each a
# wrapper script in ``host_bin_dir`` (``vlab.shell.host`` implements them).
ESXI_COMMANDS = (
    "esxcli",
    "net-stats",
    "net-vdl2",
    "pktcap-uw",
    "vmkping",
    "esxtop",
    "esxcfg-nics",
    "esxcfg-vmknic",
    "esxcfg-vswitch",
    "tcpdump-uw",
)


def host_bin_dir(run_dir, host: str):
    """Where an ESXi host's shell commands live (first on its PATH)."""
    from pathlib import Path

    return Path(run_dir) / host / "bin"


def capture_port(ofport: int) -> str:
    """The internal port a PortOutput capture of vSwitch port ``ofport``
    listens on (its OpenFlow number is ``bindings.CAPTURE_BASE + ofport``)."""
    return f"pcap{ofport}"


def control_port(host: str) -> str:
    """The management-network end of a host's control link (mgmt namespace)."""
    return f"c-{host}"


def synced_marker(run_dir, dpid: int):
    """File the controller writes once a switch acknowledged its flows (barrier)."""
    from pathlib import Path

    return Path(run_dir) / "synced" / f"{dpid:016x}"


CONTROL_IFACE = "mgmt0"  # the host-side end of the control link
FABRIC_NODE = "fabric"  # Mininet node holding every physical switch
MGMT_NODE = "mgmt"  # Mininet node holding the controller (vCenter/NSX)
RESERVED_NODE_NAMES = (FABRIC_NODE, MGMT_NODE)
