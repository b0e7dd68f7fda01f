"""The labs ``vlab bench`` builds, generated as plain lab dicts (the same
format as ``labs/*.yaml``, validated by the same checker).

* ``scale_lab(hosts, vms_per_host)``: N ESXi hosts on one physical switch,
  each with two 1 GbE uplinks in one distributed switch, every VM in one
  VLAN-backed port group and one /16, so every VM should reach every VM.
* ``operations_lab()``: a VM with an active/standby team (failover) and a
  peer on a third host (vMotion between esx1 and esx2 while both talk).
* ``shaping_lab(rate)``: one VM pair across two hosts whose uplinks run at
  ``rate``, for measured vs configured TCP throughput.
* ``single_host_lab()``: two VMs on one vSwitch: the OVS-bridge ceiling.
"""

from __future__ import annotations

LINK_SCALE = 0.01  # 1 GbE -> 10 Mbit/s, as in every lab here


def _mac(host: int, vm: int) -> str:
    return f"00:50:56:c{host // 256:01x}:{host % 256:02x}:{vm:02x}"


def scale_lab(hosts: int, vms_per_host: int = 8) -> dict:
    """``hosts`` x ``vms_per_host`` VMs, all in VLAN 10, 10.10.0.0/16."""
    return {
        "name": f"bench-{hosts}x{vms_per_host}",
        "description": f"{hosts} ESXi hosts x {vms_per_host} VMs, one VLAN",
        "link_scale": LINK_SCALE,
        "physical_switches": [{"name": "pswitch1", "mac_aging": 300}],
        "distributed_switches": [
            {
                "name": "dvs",
                "uplinks": ["dvUplink1", "dvUplink2"],
                "port_groups": [{"name": "web", "vlan": 10}],
            }
        ],
        "esxi_hosts": [
            {
                "name": f"esx{h}",
                "uplinks": [
                    {"name": f"vmnic{u}", "speed": 10, "switch": "pswitch1", "port": 2 * h + u - 1}
                    for u in (0, 1)
                ],
                "distributed_switches": [
                    {"name": "dvs", "uplinks": {"dvUplink1": "vmnic0", "dvUplink2": "vmnic1"}}
                ],
            }
            for h in range(1, hosts + 1)
        ],
        "vms": [
            {
                "name": f"h{h}v{v}",
                "host": f"esx{h}",
                "vnics": [{"port_group": "web", "mac": _mac(h, v), "ip": f"10.10.{h}.{10 + v}/16"}],
            }
            for h in range(1, hosts + 1)
            for v in range(vms_per_host)
        ],
    }


def operations_lab() -> dict:
    """esx1..esx3; PG-FO on VLAN 10: active vmnic0, standby vmnic1, notify
    switches on. ``mover`` starts on esx1, ``peer`` runs on esx3."""

    def host(h):
        return {
            "name": f"esx{h}",
            "uplinks": [
                {"name": f"vmnic{u}", "speed": 10, "switch": "pswitch1", "port": 2 * h + u - 1}
                for u in (0, 1)
            ],
            "vswitches": [
                {
                    "name": "vSwitch0",
                    "uplinks": ["vmnic0", "vmnic1"],
                    "port_groups": [
                        {
                            "name": "PG-FO",
                            "vlan": 10,
                            "teaming": {"active": ["vmnic0"], "standby": ["vmnic1"], "notify_switches": True},
                        }
                    ],
                }
            ],
        }

    return {
        "name": "bench-ops",
        "description": "failover (active/standby) and vMotion of a chatty VM",
        "link_scale": LINK_SCALE,
        "physical_switches": [{"name": "pswitch1", "mac_aging": 300}],
        "esxi_hosts": [host(1), host(2), host(3)],
        "vms": [
            {
                "name": "mover",
                "host": "esx1",
                "vnics": [{"port_group": "PG-FO", "mac": "00:50:56:c0:00:01", "ip": "10.10.0.11/24"}],
            },
            {
                "name": "peer",
                "host": "esx3",
                "vnics": [{"port_group": "PG-FO", "mac": "00:50:56:c0:00:03", "ip": "10.10.0.13/24"}],
            },
        ],
    }


def shaping_lab(rate_mbps: int) -> dict:
    """Two hosts, one 10 GbE uplink each, scaled to ``rate_mbps``
    (``link_scale`` = rate / 10 Gbit/s: lab speeds are 1, 10 or 25 GbE, so
    the scale is what sets an arbitrary rate); VM ``sa`` on esx1, ``sb`` on
    esx2 in one port group."""

    def host(h):
        return {
            "name": f"esx{h}",
            "uplinks": [{"name": "vmnic0", "speed": 10, "switch": "pswitch1", "port": h}],
            "vswitches": [
                {"name": "vSwitch0", "uplinks": ["vmnic0"], "port_groups": [{"name": "web", "vlan": 10}]}
            ],
        }

    return {
        "name": f"bench-rate{rate_mbps}",
        "description": f"one VM pair over {rate_mbps} Mbit/s uplinks",
        "link_scale": rate_mbps / 10_000,
        "physical_switches": [{"name": "pswitch1"}],
        "esxi_hosts": [host(1), host(2)],
        "vms": [
            {
                "name": f"s{side}",
                "host": f"esx{h}",
                "vnics": [{"port_group": "web", "mac": _mac(h, 1), "ip": f"10.10.0.{10 + h}/24"}],
            }
            for h, side in ((1, "a"), (2, "b"))
        ],
    }


def single_host_lab() -> dict:
    """Two VMs on one standard vSwitch of one host: VM -> OVS -> VM, no uplink."""
    return {
        "name": "bench-bridge",
        "description": "two VMs on one vSwitch (OVS userspace bridge ceiling)",
        "link_scale": LINK_SCALE,
        "physical_switches": [{"name": "pswitch1"}],
        "esxi_hosts": [
            {
                "name": "esx1",
                "uplinks": [{"name": "vmnic0", "speed": 10, "switch": "pswitch1", "port": 1}],
                "vswitches": [
                    {"name": "vSwitch0", "uplinks": ["vmnic0"], "port_groups": [{"name": "web", "vlan": 10}]}
                ],
            }
        ],
        "vms": [
            {
                "name": f"b{i}",
                "host": "esx1",
                "vnics": [{"port_group": "web", "mac": _mac(1, i), "ip": f"10.10.0.{10 + i}/24"}],
            }
            for i in (1, 2)
        ],
    }
