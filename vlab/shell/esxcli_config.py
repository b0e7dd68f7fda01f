"""esxcli's configuration commands for standard vSwitches: the ``set``
counterparts of the ``get`` views, and ``portgroup add|remove``, with ESXi's
options and values. Each turns into edits of the running lab
(``vlab.lab.edits``) that ``LabControl.change_config`` validates as the lab
file is validated and the controller compiles into the host's flows: the
command returns once every switch has the change, so the next frame obeys
it. A value ESXi would refuse, or that the lab would refuse, is an
``Error:`` and changes nothing. Like ESXi's, a successful ``set`` prints
nothing.

    portgroup set -p PG --vlan-id N
    portgroup add|remove -p PG -v VSWITCH
    [portgroup] policy security set  (-p PG | -v VSWITCH) [-f|-m|-o/-p BOOL] [-u]
    [portgroup] policy failover set  (-p PG | -v VSWITCH) [-a UPLINKS] [-s UPLINKS]
                                     [-l portid|mac|iphash|explicit] [-f link|beacon]
                                     [-n BOOL] [-b BOOL] [-u]

    [portgroup] policy shaping set   (-p PG | -v VSWITCH) [-e BOOL] [-b KBPS] [-k KBPS]
                                     [-t KIB] [-u]

Shaping's change replaces the tbf qdiscs on the cables of the ports whose
policy changed (``vlab.operations.reconfigure``); the others are flows.
"""

from __future__ import annotations

from typing import Optional

from vlab.lab.edits import portgroup_path, set_edit, unset_edit, vswitch_path
from vlab.lab.model import Teaming
from vlab.lab.resolve import effective_teaming
from vlab.operations.labcontrol import client_name
from vlab.operations.reconfigure import ConfigRefused

from .esxcli_output import Command, EsxcliError, Output, Structs
from .hostfacts import HostFacts

NOTHING = Structs([])  # what a successful set prints

# esxcli's values for --load-balancing and --failure-detection -> the lab's.
LOAD_BALANCING_SET = {
    "portid": "originating_port",
    "mac": "source_mac_hash",
    "iphash": "ip_hash",
    "explicit": "explicit_failover",
}
FAILURE_DETECTION_SET = {"link": "link_status", "beacon": "beacon_probing"}
BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
VLAN_RANGE = (0, 4095)  # 4095: every VLAN reaches the guest (virtual guest tagging)


def _bool(option: str, text: Optional[str]) -> Optional[bool]:
    if text is None:
        return None
    try:
        return BOOLEANS[text.lower()]
    except KeyError:
        raise EsxcliError(f"Invalid value '{text}' for option --{option}: expected true or false") from None


def _choice(option: str, text: Optional[str], values: dict) -> Optional[str]:
    if text is None:
        return None
    if text not in values:
        raise EsxcliError(
            f"Invalid value '{text}' for option --{option}. Valid values are: {', '.join(values)}"
        )
    return values[text]


def _policy(allowed: Optional[bool]) -> Optional[str]:
    return None if allowed is None else ("accept" if allowed else "reject")


def _vswitch(f: HostFacts, name: str):
    sw = next((s for s in f.esx.vswitches if s.name == name), None)
    if sw is None:
        raise EsxcliError(f"Unable to find vswitch {name}", usage=False)
    return sw


def _portgroup(f: HostFacts, name: str):
    """(standard vSwitch, port group) of port group ``name`` on this host."""
    for sw in f.esx.vswitches:
        for pg in sw.port_groups:
            if pg.name == name:
                return sw, pg
    raise EsxcliError(f"Invalid portgroup: {name}", usage=False)


def _change(f: HostFacts, edits: list[dict]) -> Output:
    if not edits:
        return NOTHING  # ESXi takes a set without options as a set of nothing
    try:
        f.ctl.change_config(edits)
    except ConfigRefused as exc:
        # The lab's own check, in its words, with the field it would break.
        raise EsxcliError(f"Invalid configuration: {exc.problem} ({exc.field})", usage=False) from None
    return NOTHING


# -- port groups ------------------------------------------------------------------------
def portgroup_set(f: HostFacts, a) -> Output:
    sw, pg = _portgroup(f, a.portgroup_name)
    try:
        vlan = int(a.vlan_id)
    except ValueError:
        vlan = None
    if vlan is None or not VLAN_RANGE[0] <= vlan <= VLAN_RANGE[1]:
        raise EsxcliError(
            f"Invalid vlan id {a.vlan_id}: it must be between {VLAN_RANGE[0]} and {VLAN_RANGE[1]}"
        )
    return _change(f, [set_edit([*portgroup_path(f.name, sw.name, pg.name), "vlan"], vlan)])


def portgroup_add(f: HostFacts, a) -> Output:
    sw = _vswitch(f, a.vswitch_name)
    taken = next((s for s in f.esx.vswitches for pg in s.port_groups if pg.name == a.portgroup_name), None)
    if taken is not None:
        raise EsxcliError(f"A portgroup with the name {a.portgroup_name} already exists", usage=False)
    path = [*vswitch_path(f.name, sw.name), "port_groups"]
    return _change(f, [{"op": "append", "path": path, "value": {"name": a.portgroup_name}}])


def portgroup_remove(f: HostFacts, a) -> Output:
    sw = _vswitch(f, a.vswitch_name)
    if a.portgroup_name not in {pg.name for pg in sw.port_groups}:
        raise EsxcliError(f"Unable to find portgroup {a.portgroup_name} on vswitch {sw.name}", usage=False)
    users = sorted(
        client_name(p)
        for b in f.bindings
        if b.bridge == sw.name
        for p in b.local_ports()
        if p.port_group == a.portgroup_name
    )
    if users:
        # ESXi's answer for a port group that still has ports on it, and
        # which ports (ESXi leaves that to the VMkernel log).
        raise EsxcliError(
            f"Sysinfo error: Busy See VMkernel log for details. (in use by {', '.join(users)})", usage=False
        )
    path = [*vswitch_path(f.name, sw.name), "port_groups"]
    return _change(f, [{"op": "remove", "path": path, "value": a.portgroup_name}])


# -- security ---------------------------------------------------------------------------
SECURITY_FIELDS = ("promiscuous", "mac_changes", "forged_transmits")


def _security_edits(base: list, a, promiscuous_option: str) -> list[dict]:
    values = {
        "forged_transmits": _policy(_bool("allow-forged-transmits", a.allow_forged_transmits)),
        "mac_changes": _policy(_bool("allow-mac-change", a.allow_mac_change)),
        "promiscuous": _policy(_bool("allow-promiscuous", getattr(a, promiscuous_option))),
    }
    edits = []
    if _bool("use-vswitch", getattr(a, "use_vswitch", None)):
        edits += [unset_edit([*base, "security", k]) for k in SECURITY_FIELDS]
    edits += [set_edit([*base, "security", k], v) for k, v in values.items() if v is not None]
    return edits


def portgroup_security_set(f: HostFacts, a) -> Output:
    sw, pg = _portgroup(f, a.portgroup_name)
    return _change(f, _security_edits(portgroup_path(f.name, sw.name, pg.name), a, "allow_promiscuous"))


def vswitch_security_set(f: HostFacts, a) -> Output:
    sw = _vswitch(f, a.vswitch_name)
    return _change(f, _security_edits(vswitch_path(f.name, sw.name), a, "allow_promiscuous"))


# -- failover (teaming) ---------------------------------------------------------------------
TEAMING_FIELDS = ("policy", "failure_detection", "notify_switches", "failback", "active", "standby", "unused")


def _uplinks(option: str, text: Optional[str]) -> Optional[list[str]]:
    if text is None:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    if len(set(names)) != len(names):
        raise EsxcliError(f"Invalid value for option --{option}: an uplink is listed twice")
    return names


def _failover_edits(f: HostFacts, base: list, sw, order_now, a) -> list[dict]:
    """The edits of one failover ``set``; ``order_now``: the effective team,
    whose order an ``-a`` or ``-s`` alone keeps the rest of (the failover
    order is one unit, as in the vSphere client: written whole)."""
    edits = []
    if _bool("use-vswitch", getattr(a, "use_vswitch", None)):
        edits += [unset_edit([*base, "teaming", k]) for k in TEAMING_FIELDS]
    scalars = {
        "policy": _choice("load-balancing", a.load_balancing, LOAD_BALANCING_SET),
        "failure_detection": _choice("failure-detection", a.failure_detection, FAILURE_DETECTION_SET),
        "notify_switches": _bool("notify-switches", a.notify_switches),
        "failback": _bool("failback", a.failback),
    }
    edits += [set_edit([*base, "teaming", k], v) for k, v in scalars.items() if v is not None]
    active, standby = (
        _uplinks("active-uplinks", a.active_uplinks),
        _uplinks("standby-uplinks", a.standby_uplinks),
    )
    if active is not None or standby is not None:
        if active is None:
            active = [u for u in order_now.active if u not in standby]
        if standby is None:
            standby = [u for u in order_now.standby if u not in active]
        unused = [u for u in sw.uplinks if u not in active + standby]
        order = {"active": active, "standby": standby, "unused": unused}
        edits += [set_edit([*base, "teaming", k], v) for k, v in order.items()]
    return edits


def portgroup_failover_set(f: HostFacts, a) -> Output:
    sw, pg = _portgroup(f, a.portgroup_name)
    binding = next(b for b in f.bindings if b.bridge == sw.name)
    team = binding.switch.port_group(pg.name).teaming
    return _change(f, _failover_edits(f, portgroup_path(f.name, sw.name, pg.name), sw, team, a))


def vswitch_failover_set(f: HostFacts, a) -> Output:
    sw = _vswitch(f, a.vswitch_name)
    team = effective_teaming(sw.uplinks, sw.teaming, Teaming())
    return _change(f, _failover_edits(f, vswitch_path(f.name, sw.name), sw, team, a))


# -- traffic shaping ----------------------------------------------------------------------
SHAPING_FIELDS = ("enabled", "average_bandwidth", "peak_bandwidth", "burst_size")


def _number(option: str, text: Optional[str]) -> Optional[int]:
    if text is None:
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise EsxcliError(f"Invalid value '{text}' for option --{option}: expected a positive integer")
    return value


def _shaping_edits(base: list, a) -> list[dict]:
    edits = []
    if _bool("use-vswitch", getattr(a, "use_vswitch", None)):
        edits += [unset_edit([*base, "shaping", k]) for k in SHAPING_FIELDS]
    values = {
        "enabled": _bool("enabled", a.enabled),
        "average_bandwidth": _number("avg-bandwidth", a.avg_bandwidth),
        "peak_bandwidth": _number("peak-bandwidth", a.peak_bandwidth),
        "burst_size": _number("burst-size", a.burst_size),
    }
    return edits + [set_edit([*base, "shaping", k], v) for k, v in values.items() if v is not None]


def portgroup_shaping_set(f: HostFacts, a) -> Output:
    sw, pg = _portgroup(f, a.portgroup_name)
    return _change(f, _shaping_edits(portgroup_path(f.name, sw.name, pg.name), a))


def vswitch_shaping_set(f: HostFacts, a) -> Output:
    sw = _vswitch(f, a.vswitch_name)
    return _change(f, _shaping_edits(vswitch_path(f.name, sw.name), a))


# -- the command table --------------------------------------------------------------------
PG = (("-p", "--portgroup-name"), "portgroup_name", True, "The name of the port group.")
VS = (("-v", "--vswitch-name"), "vswitch_name", True, "The name of the virtual switch.")
USE_VSWITCH = (
    ("-u", "--use-vswitch"),
    "use_vswitch",
    False,
    "Reset every value of this policy to the virtual switch's (inherit).",
)
FORGED = (("-f", "--allow-forged-transmits"), "allow_forged_transmits", False, "Allow forged transmits.")
MAC_CHANGE = (("-m", "--allow-mac-change"), "allow_mac_change", False, "Allow MAC address changes.")
FAILOVER = (
    (("-a", "--active-uplinks"), "active_uplinks", False, "Comma-separated active uplinks, in order."),
    (("-s", "--standby-uplinks"), "standby_uplinks", False, "Comma-separated standby uplinks, in order."),
    (("-l", "--load-balancing"), "load_balancing", False, "portid, mac, iphash or explicit."),
    (("-f", "--failure-detection"), "failure_detection", False, "link or beacon."),
    (("-n", "--notify-switches"), "notify_switches", False, "Notify the physical switches of moves."),
    (("-b", "--failback"), "failback", False, "Return to a recovered active uplink."),
)
SHAPING = (
    (("-e", "--enabled"), "enabled", False, "Enable traffic shaping (true or false)."),
    (("-b", "--avg-bandwidth"), "avg_bandwidth", False, "The average bandwidth, in Kbps."),
    (("-k", "--peak-bandwidth"), "peak_bandwidth", False, "The peak bandwidth, in Kbps."),
    (("-t", "--burst-size"), "burst_size", False, "The burst size, in Kib."),
)
PREFIX = ("network", "vswitch", "standard")

COMMANDS: dict[tuple[str, ...], Command] = {
    PREFIX + ("portgroup", "set"): Command(
        portgroup_set,
        (PG, (("-v", "--vlan-id"), "vlan_id", True, "The VLAN ID (0: none, 4095: all).")),
        "Set the VLAN ID of a port group.",
    ),
    PREFIX + ("portgroup", "add"): Command(portgroup_add, (PG, VS), "Add a port group to a virtual switch."),
    PREFIX + ("portgroup", "remove"): Command(
        portgroup_remove, (PG, VS), "Remove a port group from a virtual switch."
    ),
    PREFIX + ("portgroup", "policy", "security", "set"): Command(
        portgroup_security_set,
        (
            PG,
            FORGED,
            MAC_CHANGE,
            (("-o", "--allow-promiscuous"), "allow_promiscuous", False, "Allow promiscuous mode."),
            USE_VSWITCH,
        ),
        "Set the security policy of a port group.",
    ),
    PREFIX + ("policy", "security", "set"): Command(
        vswitch_security_set,
        (
            VS,
            FORGED,
            MAC_CHANGE,
            (("-p", "--allow-promiscuous"), "allow_promiscuous", False, "Allow promiscuous mode."),
        ),
        "Set the security policy of a virtual switch.",
    ),
    PREFIX + ("portgroup", "policy", "failover", "set"): Command(
        portgroup_failover_set, (PG, *FAILOVER, USE_VSWITCH), "Set the failover policy of a port group."
    ),
    PREFIX + ("policy", "failover", "set"): Command(
        vswitch_failover_set, (VS, *FAILOVER), "Set the failover policy of a virtual switch."
    ),
    PREFIX + ("portgroup", "policy", "shaping", "set"): Command(
        portgroup_shaping_set, (PG, *SHAPING, USE_VSWITCH), "Set the shaping policy of a port group."
    ),
    PREFIX + ("policy", "shaping", "set"): Command(
        vswitch_shaping_set, (VS, *SHAPING), "Set the shaping policy of a virtual switch."
    ),
}

# Options that may be given alone, as a flag (``-u``), or with a value (``-u true``).
FLAGS = frozenset({"use_vswitch"})
