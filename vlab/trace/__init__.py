"""``vlab trace``: why did my frame not arrive?

A frame is given as fields (``--dst vm2 --tcp 80``) or taken from a pcap,
entering one vSwitch port of one ESXi host. Without a running lab the
frame walks the bridge the controller would compile from the lab file
(``controller.explain``: every stage, and each drop's reason in ESXi/NSX
terms). On a running lab (``--run`` / ``--live``) the controller's current
view is rebuilt from the run's control files (placement, guests' NIC state,
uplinks down, DFW sessions, captures, snooped addresses), and the frame is
also traced by the host's own OVS (``ovs-appctl ofproto/trace``), whose
tables, cookies and priorities are read back as stage, concern and band
names; when OVS and the simulator disagree on where the frame goes, the
trace says so instead of choosing.

``frames`` builds the frame; ``ovs`` reads OVS's trace and the live view.
"""

from .frames import TraceError, build_frame, frame_from_pcap
from .ovs import compare_with_ovs, ct_next, live_state, ofproto_flow, parse_ofproto_trace

__all__ = [
    "TraceError",
    "build_frame",
    "compare_with_ovs",
    "ct_next",
    "frame_from_pcap",
    "live_state",
    "ofproto_flow",
    "parse_ofproto_trace",
]
