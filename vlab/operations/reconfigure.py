"""An administrator changing a running lab's configuration, as vCenter or
esxcli does (``esxcli network vswitch standard portgroup set --vlan-id``,
``... policy security set``, ``portgroup add``): the change is an edit of the
lab (``vlab.lab.edits``), validated against the running lab exactly as the
lab file is, appended to ``desired.json``'s ``config_edits`` under its lock,
and compiled by the controller into every bridge's flows. A change the lab
would refuse changes nothing and says which field it broke.
"""

from __future__ import annotations

from vlab import control
from vlab.lab.edits import edited_lab
from vlab.lab.load import LabError

from .errors import OperationError


class ConfigRefused(OperationError):
    """A change the lab refuses: ``problem`` and the ``field`` it breaks
    (a dotted path in the lab file)."""

    def __init__(self, problem: str, field: str):
        self.problem, self.field = problem, field
        super().__init__(f"{problem} ({field})" if field else problem)


def change_config(ctl, edits: list[dict], timeout: float = 10.0) -> None:
    """Make ``edits`` to the running lab; return once every switch has
    them. Validated under the ``desired.json`` lock against the journal as it
    stands, so two administrators never interleave half-checked changes."""

    def edit(want: dict) -> None:
        journal = control.config_edits(want) + list(edits)
        try:
            edited_lab(ctl.lab_file, journal, ctl.lab_data)
        except LabError as exc:
            raise ConfigRefused(exc.problem, exc.path) from None
        want["config_edits"] = journal

    ctl.request_change(edit, timeout)
