"""Lab files for the validation tests: the valid bases every invalid case
starts from, and edits written as paths in the same notation as the error
messages (``vms[0].vnics[0].mac``)."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml

LABS = Path(__file__).resolve().parents[2] / "labs"
TWO_HOSTS = yaml.safe_load((LABS / "two-hosts.yaml").read_text())

# Two hosts with a standard vSwitch for management and a distributed switch
# for VM traffic; esx2 maps the dvUplinks the other way round than esx1.
DVS_LAB_YAML = """
name: dvs-lab
physical_switches:
  - name: pswitch1
    lags:
      - {name: po1, ports: [3, 4]}
distributed_switches:
  - name: dvs1
    uplinks: [Uplink1, Uplink2]
    port_groups:
      - {name: DPG-10, vlan: 10}
      - name: DPG-Trunk
        vlan: 4095
        security: {forged_transmits: accept}
        teaming: {active: [Uplink2], standby: [Uplink1]}
esxi_hosts:
  - name: esx1
    uplinks:
      - {name: vmnic0, speed: 1, switch: pswitch1, port: 1}
      - {name: vmnic1, speed: 1, switch: pswitch1, port: 2}
      - {name: vmnic2, speed: 10, switch: pswitch1, port: 3}
      - {name: vmnic3, speed: 10, switch: pswitch1, port: 4}
    vswitches:
      - name: vSwitch0
        uplinks: [vmnic0, vmnic1]
        port_groups: [{name: Management, vlan: 100}]
    distributed_switches:
      - {name: dvs1, uplinks: {Uplink1: vmnic2, Uplink2: vmnic3}}
    vmkernel:
      - {name: vmk0, port_group: Management, ip: 192.168.100.11/24}
  - name: esx2
    uplinks:
      - {name: vmnic0, speed: 1, switch: pswitch1, port: 5}
      - {name: vmnic1, speed: 1, switch: pswitch1, port: 6}
      - {name: vmnic2, speed: 10, switch: pswitch1, port: 7}
      - {name: vmnic3, speed: 10, switch: pswitch1, port: 8}
    vswitches:
      - name: vSwitch0
        uplinks: [vmnic0, vmnic1]
        port_groups: [{name: Management, vlan: 100}]
    distributed_switches:
      - {name: dvs1, uplinks: {Uplink1: vmnic3, Uplink2: vmnic2}}
    vmkernel:
      - {name: vmk0, port_group: Management, ip: 192.168.100.12/24}
vms:
  - {name: vm1, host: esx1, vnics: [{port_group: DPG-10, mac: "00:50:56:00:01:01", ip: 10.10.0.1/24}]}
  - {name: vm2, host: esx2, vnics: [{port_group: DPG-Trunk, mac: "00:50:56:00:02:01"}]}
"""
DVS_LAB = yaml.safe_load(DVS_LAB_YAML)
NSX_LAB = yaml.safe_load((LABS / "nsx-overlay.yaml").read_text())
BASES = {"two-hosts": TWO_HOSTS, "dvs": DVS_LAB, "nsx": NSX_LAB}


# --- dict-path edits, in the same notation as the error messages ------------


def _parts(path: str) -> list:
    """'esxi_hosts[0].uplinks[1].speed' -> ['esxi_hosts', 0, 'uplinks', 1, 'speed']."""
    return [int(tok[1:-1]) if tok.startswith("[") else tok for tok in re.findall(r"\[\d+\]|[^.\[\]]+", path)]


def _walk(data, path: str):
    *head, last = _parts(path)
    for part in head:
        data = data[part]
    return data, last


def put(path: str, value):
    """Set (or add) the field at ``path``."""

    def edit(data):
        parent, last = _walk(data, path)
        parent[last] = copy.deepcopy(value)

    return edit


def drop(path: str):
    """Delete the field at ``path``."""

    def edit(data):
        parent, last = _walk(data, path)
        del parent[last]

    return edit


def append(path: str, value):
    """Append ``value`` to the list at ``path`` (creating it if absent)."""

    def edit(data):
        parent, last = _walk(data, path)
        parent.setdefault(last, []).append(copy.deepcopy(value))

    return edit


def both(*edits):
    def edit(data):
        for e in edits:
            e(data)

    return edit


HOST0 = "esxi_hosts[0]"
VSW0 = "esxi_hosts[0].vswitches[0]"
PG_1G = "esxi_hosts[0].vswitches[0].port_groups[1]"  # PG-1G on esx1
VNIC0 = "vms[0].vnics[0]"  # vm1a's eth0
DVS = "distributed_switches[0]"
MEMBER0 = "esxi_hosts[0].distributed_switches[0]"  # esx1's dvs1 membership
IP_HASH_HINT = "ip_hash needs every active uplink in one static LAG (physical_switches[].lags)"


def case(id_, edit, expected, base="two-hosts"):
    return pytest.param(base, edit, "lab.yaml: " + expected, id=id_)


def refusal(base: str, edit) -> str:
    """The one-line error of lab ``base`` after ``edit`` (it must be refused)."""
    from vlab.lab.load import LabError, parse_lab

    data = copy.deepcopy(BASES[base])
    edit(data)
    with pytest.raises(LabError) as info:
        parse_lab(data, "lab.yaml")
    return str(info.value)
