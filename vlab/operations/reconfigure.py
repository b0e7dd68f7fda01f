"""An administrator changing a running lab's configuration, as vCenter or
esxcli does (``esxcli network vswitch standard portgroup set --vlan-id``,
``... policy security set``, ``portgroup add``): the change is an edit of the
lab (``vlab.lab.edits``), validated against the running lab exactly as the
lab file is, appended to ``desired.json``'s ``config_edits`` under its lock,
and compiled by the controller into every bridge's flows. A change the lab
would refuse changes nothing and says which field it broke.
"""

from __future__ import annotations

from vlab import control, naming
from vlab.lab.edits import edited_lab, set_edit, unset_edit, vnic_path
from vlab.lab.load import LabError
from vlab.lab.model import Lab
from vlab.lab.shaping import placed_qdiscs, tc_replace

from . import vmotion
from .errors import OperationError


class ConfigRefused(OperationError):
    """A change the lab refuses: ``problem`` and the ``field`` it breaks
    (a dotted path in the lab file)."""

    def __init__(self, problem: str, field: str):
        self.problem, self.field = problem, field
        super().__init__(f"{problem} ({field})" if field else problem)


def change_config(ctl, edits: list[dict], timeout: float = 10.0, also=None) -> Lab:
    """Make ``edits`` to the running lab; return it once every switch has
    them. Validated under the ``desired.json`` lock against the journal as it
    stands, so two administrators never interleave half-checked changes.
    ``also(want, lab)``: more changes to ``desired.json`` in the same
    request, given the changed lab (a vNIC's new placement)."""

    labs = {}

    def edit(want: dict) -> None:
        journal = control.config_edits(want)
        try:
            labs["new"] = edited_lab(ctl.lab_file, journal + list(edits), ctl.lab_data)
        except LabError as exc:
            raise ConfigRefused(exc.problem, exc.path) from None
        labs["old"] = edited_lab(ctl.lab_file, journal, ctl.lab_data)
        if also is not None:
            also(want, labs["new"])
        want["config_edits"] = journal + list(edits)

    ctl.request_change(edit, timeout)
    host_of = {port: p.host for port, p in ctl.placement().items()}
    old = {(q.node, q.dev): q.qdisc for q in placed_qdiscs(labs["old"], host_of)}
    for q in placed_qdiscs(labs["new"], host_of):
        if old.get((q.node, q.dev)) != q.qdisc:
            ctl.sh(q.node, tc_replace(q.dev, q.qdisc))
    return labs["new"]


def connect_vnic(ctl, vm_name: str, network: str, vnic: str = "eth0", timeout: float = 10.0) -> dict:
    """vCenter's Edit Settings > Network adapter > Network: ``vm_name``'s
    ``vnic`` leaves its port and connects to ``network`` (a port group, or
    an NSX logical switch) on the host where the VM runs now. As on ESXi it
    gets a new port (a new port ID, so port-ID teaming may pin it to another
    uplink), on the new network's vSwitch, which may be another one; the
    guest keeps its MAC and IP. Returns the port's old and new place."""
    vm = ctl.vm(vm_name)
    nic = next((n for n in vm.vnics if n.name == vnic), None)
    if nic is None:
        raise OperationError(f"{vm_name} has no vNIC {vnic!r} ({', '.join(n.name for n in vm.vnics)})")
    port = naming.vnic_port(vm.name, nic.name)
    where = ctl.placement()
    host = where[port].host
    logical = ctl.lab.nsx is not None and network in {ls.name for ls in ctl.lab.nsx.logical_switches}
    kind, other = ("logical_switch", "port_group") if logical else ("port_group", "logical_switch")
    path = vnic_path(vm.name, nic.name)
    edits = [set_edit([*path, kind], network), unset_edit([*path, other])]
    new_nic = nic.model_copy(update={kind: network, other: None})
    old_switch = vmotion.switch_of(ctl, host, nic)
    ofport = max(p.ofport for p in where.values()) + 1

    def place(want: dict, lab) -> None:
        # The lab file's own check judges the VM on its lab host; the VM
        # runs on ``host`` now: the network must be there.
        try:
            vmotion.switch_of_in(lab, lab_host(lab, host), new_nic)
        except OperationError as exc:
            raise OperationError(f"cannot connect {vm_name}.{vnic} to {network}: {exc}") from None
        want.setdefault("placement", {})[port] = {"host": host, "ofport": ofport}

    # Judged before the vNIC leaves its port (and again under the lock).
    try:
        lab = edited_lab(ctl.lab_file, control.config_edits(ctl.desired()) + edits, ctl.lab_data)
    except LabError as exc:
        raise ConfigRefused(exc.problem, exc.path) from None
    place({}, lab)
    ctl.ovs(host).vsctl("--if-exists", "del-port", old_switch.name, port)
    try:
        change_config(ctl, edits, timeout, also=place)
    except BaseException:
        # Refused: the vNIC goes back to the port it had.
        vmotion.plug(ctl, host, vm_name, [(port, nic)], {port: where[port].ofport})
        raise
    vmotion.plug(ctl, host, vm_name, [(port, ctl.vm(vm_name).vnics[vm.vnics.index(nic)])], {port: ofport})
    return {
        "port": port,
        "host": host,
        "from": old_switch.name,
        "to": vmotion.switch_of(ctl, host, new_nic).name,
    }


def lab_host(lab, name: str):
    return next(h for h in lab.esxi_hosts if h.name == name)
