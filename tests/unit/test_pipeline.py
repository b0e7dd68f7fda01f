"""The pipeline declaration: every flow every shipped lab compiles fits it,
and a flow that does not (a wrong goto, match, priority, set field or
recirculation) is refused with a reason naming the stage."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml

from controller import pipeline, pipeline_check, pipeline_doc
from controller.pipeline import Concern, FlowSpec, Priority, Table, cookie
from controller.pipeline_check import violations
from controller.state import ControllerState
from experiments.vmsc_asymmetry import DFW_POLICY
from vlab.cli import main
from vlab.lab.load import LabError, load_lab, parse_lab

ROOT = Path(__file__).resolve().parents[2]
LABS = sorted((ROOT / "labs").glob("*.yaml")) + sorted((ROOT / "tests/integration/labs").glob("*.yaml"))
VSWITCH = cookie(Concern.VSWITCH)


def _with_dfw(name: str) -> dict:
    data = yaml.safe_load((ROOT / "labs" / name).read_text())
    data["distributed_firewall"] = copy.deepcopy(DFW_POLICY)
    return data


def _every_flow(lab) -> list[FlowSpec]:
    state = ControllerState(lab)
    return [f for dpid in state.dpids for f in state.flows(dpid)]


@pytest.mark.parametrize("path", LABS, ids=lambda p: p.name)
def test_every_flow_of_every_shipped_lab_fits_the_declaration(path):
    flows = _every_flow(load_lab(path))
    assert flows
    assert [(f, violations(f)) for f in flows if violations(f)] == []


def test_distributed_firewall_flows_fit_the_declaration():
    flows = _every_flow(parse_lab(_with_dfw("vmsc.yaml")))
    tables = {f.table for f in flows}
    assert {Table.DFW_FROM_VM, Table.DFW_TO_VM, Table.DFW_TO_VM_CT} <= tables
    assert [f for f in flows if violations(f)] == []


def _flow(
    table=Table.FORWARD, priority=Priority.EXACT, match=None, actions=(), goto=None, concern=VSWITCH
) -> FlowSpec:
    return FlowSpec.make(table, priority, match or {"in_port": 1}, actions, goto, concern)


@pytest.mark.parametrize(
    "flow, reason",
    [
        (_flow(goto=Table.INGRESS), "vs_forward may not go to table 0"),
        (_flow(match={"in_port": 1, "ipv4_dst": "10.0.0.1"}), "vs_forward may not match ipv4_dst"),
        (
            _flow(
                table=Table.ROUTE,
                concern=cookie(Concern.ROUTER),
                match={"tunnel_id": 5, "ipv4_dst": "10.0.0.1"},
            ),
            "a match on ipv4_dst needs eth_type 0x0800",
        ),
        (_flow(priority=Priority.EXACT + 1), "priority 301 is in no band of vs_forward"),
        (_flow(concern=cookie(Concern.DFW)), "concern dfw does not write in vs_forward"),
        (_flow(actions=(("set_field", "eth_src", "00:50:56:00:00:01"),)), "vs_forward may not set eth_src"),
        (
            _flow(actions=(("clone", (("set_field", "ipv4_dst", "10.0.0.1"),)),)),
            "vs_forward may not set ipv4_dst",
        ),
        (_flow(actions=(("resubmit", Table.L2),)), "vs_forward may not resubmit to table 5"),
        (
            _flow(
                table=Table.INGRESS,
                priority=Priority.INGRESS_CLASSIFY,
                actions=(("ct", False, 1, Table.DFW_TO_VM),),
            ),
            "vs_in_port may not ct to table 7",
        ),
        (_flow(table=12), "table 12 is not in the pipeline"),
    ],
)
def test_a_flow_that_does_not_fit_is_refused_with_the_reason(flow, reason):
    assert reason in violations(flow)
    with pytest.raises(pipeline_check.PipelineError, match=re.escape(reason)):
        pipeline_check.check([flow])


def test_every_dfw_rule_has_a_priority_of_its_own_above_the_default():
    bands = {b.name: b for b in pipeline.STAGES[Table.DFW_FROM_VM].bands}
    assert bands["rules"].high - bands["rules"].low + 1 == pipeline.MAX_DFW_RULES
    assert bands["rules"].low > bands["default"].high
    assert bands["rules"].high < bands["imported"].low


def test_a_lab_with_more_firewall_rules_than_the_band_holds_is_refused():
    data = _with_dfw("vmsc.yaml")
    rule = data["distributed_firewall"]["rules"][0]
    data["distributed_firewall"]["rules"] = [
        {**rule, "name": f"r{i}"} for i in range(pipeline.MAX_DFW_RULES + 1)
    ]
    with pytest.raises(LabError, match="distributed_firewall.rules"):
        parse_lab(data)


def test_docs_pipeline_md_is_the_declaration(capsys):
    assert main(["pipeline"]) == 0
    out = capsys.readouterr().out
    assert out == pipeline_doc.markdown()
    assert (ROOT / "docs" / "pipeline.md").read_text() == out, (
        "docs/pipeline.md is stale: regenerate it with `vlab pipeline > docs/pipeline.md`"
    )
