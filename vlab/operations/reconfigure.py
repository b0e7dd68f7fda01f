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
from vlab.bindings import default_placement
from vlab.lab.edits import edited_lab, live_problem, set_edit, unset_edit, vnic_path
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


def _journal(ctl, want: dict, edits: list[dict], replug: bool) -> tuple[Lab, Lab]:
    """(the running lab, the lab with ``edits``) for the journal in ``want``;
    ``ConfigRefused`` if an edit is not one a running lab can take, or the
    lab would be invalid with it."""
    for e in edits:
        problem = live_problem(e, replug)
        if problem is not None:
            raise ConfigRefused(problem, ".".join(map(str, e.get("path", ()))))
    journal = control.config_edits(want)
    try:
        new = edited_lab(ctl.lab_file, journal + list(edits), ctl.lab_data)
    except LabError as exc:
        raise ConfigRefused(exc.problem, exc.path) from None
    return edited_lab(ctl.lab_file, journal, ctl.lab_data), new


def _reshape(ctl, old: Lab, new: Lab, want: dict) -> None:
    """Replace the qdisc of every cable whose shaping differs from ``old``
    to ``new``, with each vNIC where ``want`` places it."""
    where = {**default_placement(new), **control.placement_of(want)}
    host_of = {port: p.host for port, p in where.items()}
    before = {(q.node, q.dev): q.qdisc for q in placed_qdiscs(old, host_of)}
    for q in placed_qdiscs(new, host_of):
        if before.get((q.node, q.dev)) != q.qdisc:
            ctl.sh(q.node, tc_replace(q.dev, q.qdisc))


def change_config(ctl, edits: list[dict], timeout: float = 10.0, *, replug: bool = False, also=None) -> Lab:
    """Make ``edits`` to the running lab; return it once every switch has
    them. Judged, and the cables reshaped, under the ``desired.json`` lock
    against the journal as it stands, so two administrators never interleave
    half-checked changes and the qdiscs follow the journal's order.
    ``also(want, lab)``: more changes to ``desired.json`` in the same
    request, given the changed lab (a vNIC's new placement; ``replug``: the
    caller gives the vNIC its new port)."""
    labs = {}

    def edit(want: dict) -> None:
        old, new = _journal(ctl, want, list(edits), replug)
        if also is not None:
            also(want, new)
        _reshape(ctl, old, new, want)
        want["config_edits"] = control.config_edits(want) + list(edits)
        labs["new"] = new

    ctl.request_change(edit, timeout)
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
    was = ctl.placement()[port]
    host = was.host
    logical = ctl.lab.nsx is not None and network in {ls.name for ls in ctl.lab.nsx.logical_switches}
    kind, other = ("logical_switch", "port_group") if logical else ("port_group", "logical_switch")
    path = vnic_path(vm.name, nic.name)
    edits = [set_edit([*path, kind], network), unset_edit([*path, other])]
    new_nic = nic.model_copy(update={kind: network, other: None})
    old_switch = vmotion.switch_of(ctl, host, nic)
    chosen: dict = {}
    seq = vmotion.move_seq()

    def place(want: dict, lab: Lab) -> None:
        """The vNIC's new port, chosen from the placement as it stands."""
        where = {**default_placement(lab), **control.placement_of(want)}
        if where[port].host != host:
            raise OperationError(f"{vm_name} moved to {where[port].host} meanwhile")
        # The lab's own check judges the VM on its lab host; it runs on
        # ``host`` now: the network must be there.
        try:
            chosen["switch"] = vmotion.switch_of_in(lab, _esxi(lab, host), new_nic).name
        except OperationError as exc:
            raise ConfigRefused(f"cannot connect {vm_name}.{vnic} to {network}: {exc}", "") from None
        chosen["ofport"] = max(p.ofport for p in where.values()) + 1
        want.setdefault("placement", {})[port] = {"host": host, "ofport": chosen["ofport"]}
        want.setdefault("moves", {})[port] = vmotion.connected(seq)

    # Judged before the vNIC leaves its port (and again under the lock).
    probe = ctl.desired()
    place(probe, _journal(ctl, probe, edits, replug=True)[1])
    ctl.ovs(host).vsctl("--if-exists", "del-port", old_switch.name, port)
    try:
        vmotion.forget_cached_paths(ctl)
        change_config(ctl, edits, timeout, replug=True, also=place)
    except BaseException:
        want = ctl.desired()
        written = control.config_edits(want)[-len(edits) :] == edits and want.get("placement", {}).get(
            port, {}
        ).get("ofport") == chosen.get("ofport")
        if not written:  # refused, nothing changed: back to the port it had
            vmotion.plug(ctl, host, vm_name, [(port, nic)], {port: was.ofport})
        else:  # written, the controller late: the port where it now belongs
            vmotion.plug(ctl, host, vm_name, [(port, new_nic)], {port: chosen["ofport"]})
        raise
    vmotion.plug(ctl, host, vm_name, [(port, new_nic)], {port: chosen["ofport"]})
    return {"port": port, "host": host, "from": old_switch.name, "to": chosen["switch"]}


def _esxi(lab: Lab, name: str):
    return next(h for h in lab.esxi_hosts if h.name == name)
