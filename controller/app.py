"""The os-ken application: vCenter/NSX Manager's view pushed to every vSwitch.

A thin driver: when a host's vSwitch connects, look up its binding by DPID,
compile its flows (pure functions) and install them, then confirm with a
barrier and write ``synced/<dpid>`` under the run's state directory so the
testbed knows the switch is programmed. No flow is learned from packet-ins.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import CONFIG_DISPATCHER, MAIN_DISPATCHER, set_ev_cls
from os_ken.ofproto import ofproto_v1_3

from vlab import naming
from vlab.bindings import switch_bindings
from vlab.lab.load import load_lab

from . import ofdriver
from .vswitch import compile_vswitch

LOG = logging.getLogger("vlab.controller")


class Settings:
    """Set by ``controller.__main__`` before os-ken instantiates the app."""
    lab_file: str = ""
    state_dir: str = ""


class VSwitchController(app_manager.OSKenApp):
    """Programs each ESXi host's vSwitch bridges from the lab's bindings."""
    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.lab = load_lab(Settings.lab_file)
        self.bindings = {b.dpid: b for b in switch_bindings(self.lab)}
        self.state_dir = Path(Settings.state_dir)
        naming.synced_marker(self.state_dir, 0).parent.mkdir(parents=True, exist_ok=True)
        self.pending: dict[int, int] = {}     # dpid -> flow count awaiting barrier

    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    def on_switch_features(self, ev):
        dp = ev.msg.datapath
        binding = self.bindings.get(dp.id)
        if binding is None:
            LOG.warning("unknown datapath %016x connected; ignoring it", dp.id)
            return
        flows = compile_vswitch(binding)
        # Full resync: the compiled set is the whole truth for this bridge.
        self._marker(dp.id).unlink(missing_ok=True)
        dp.send_msg(ofdriver.delete_all(dp))
        for spec in flows:
            dp.send_msg(ofdriver.flow_mod(dp, spec))
        self.pending[dp.id] = len(flows)
        dp.send_msg(ofdriver.barrier(dp))
        LOG.info("%s/%s (dpid %016x): sent %d flows", binding.host, binding.bridge,
                 dp.id, len(flows))

    @set_ev_cls(ofp_event.EventOFPBarrierReply, MAIN_DISPATCHER)
    def on_barrier(self, ev):
        dpid = ev.msg.datapath.id
        count = self.pending.pop(dpid, None)
        if count is None:
            return
        binding = self.bindings[dpid]
        tmp = self._marker(dpid).with_suffix(".tmp")
        tmp.write_text(json.dumps({"host": binding.host, "bridge": binding.bridge,
                                   "flows": count}))
        os.replace(tmp, self._marker(dpid))
        LOG.info("%s/%s synced", binding.host, binding.bridge)

    @set_ev_cls(ofp_event.EventOFPErrorMsg, MAIN_DISPATCHER)
    def on_error(self, ev):
        LOG.error("OpenFlow error from %016x: type=%s code=%s", ev.msg.datapath.id,
                  ev.msg.type, ev.msg.code)

    def _marker(self, dpid: int) -> Path:
        return naming.synced_marker(self.state_dir, dpid)
