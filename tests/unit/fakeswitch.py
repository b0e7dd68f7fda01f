"""A fake OpenFlow 1.3 switch that applies the controller's real os-ken
messages to a flow table (in the spirit of Faucet's ``clib/fakeoftable``).

It takes what ``controller.ofdriver`` builds: ``OFPFC_ADD`` (a flow with the
same table, priority and match is replaced), ``OFPFC_DELETE_STRICT``
(exactly that flow, whoever owns it) and ``OFPFC_DELETE`` over all tables
with a cookie and cookie mask (the epoch resync), barriers (answered when
the test says so) and packet-outs (kept). ``table()`` is what the switch
holds; ``expected(flows)`` is what it must hold for a compiled flow list,
so a test compares whole tables, instructions included.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from os_ken.ofproto import ofproto_v1_3, ofproto_v1_3_parser

from controller import ofdriver
from controller.pipeline import COOKIE_MASK_CONCERN, FlowSpec


def _key(table_id: int, priority: int, match) -> tuple:
    return (table_id, priority, tuple(sorted(match._fields2)))


def _instructions(msg) -> list:
    return [i.to_jsondict() for i in msg.instructions]


@dataclass
class Entry:
    cookie: int
    instructions: list


@dataclass
class FakeDatapath:
    """What the controller sees of a switch: an id, os-ken's protocol
    modules, and ``send_msg``, which the fake applies."""

    id: int
    ofproto = ofproto_v1_3
    ofproto_parser = ofproto_v1_3_parser
    flows: dict = field(default_factory=dict)  # key -> Entry
    sent: list = field(default_factory=list)  # every message, in order
    barriers: list = field(default_factory=list)  # xids not yet answered
    packet_outs: list = field(default_factory=list)
    _xid: int = 0

    def set_xid(self, msg) -> None:
        self._xid += 1
        msg.xid = self._xid

    def send_msg(self, msg) -> None:
        self.sent.append(msg)
        ofp = self.ofproto
        if isinstance(msg, ofproto_v1_3_parser.OFPFlowMod):
            if msg.command == ofp.OFPFC_ADD:
                self.flows[_key(msg.table_id, msg.priority, msg.match)] = Entry(
                    msg.cookie, _instructions(msg)
                )
            elif msg.command == ofp.OFPFC_DELETE_STRICT:
                self.flows.pop(_key(msg.table_id, msg.priority, msg.match), None)
            elif msg.command == ofp.OFPFC_DELETE:
                assert msg.table_id == ofp.OFPTT_ALL and not msg.match._fields2, msg
                self.flows = {
                    k: e
                    for k, e in self.flows.items()
                    if (e.cookie & msg.cookie_mask) != (msg.cookie & msg.cookie_mask)
                }
            else:
                raise AssertionError(f"unexpected flow-mod command {msg.command}")
        elif isinstance(msg, ofproto_v1_3_parser.OFPBarrierRequest):
            self.barriers.append(msg.xid)
        elif isinstance(msg, ofproto_v1_3_parser.OFPPacketOut):
            self.packet_outs.append(msg)

    def table(self) -> dict:
        """key -> (owning concern's cookie, instructions), for what the switch holds."""
        return {k: (e.cookie & COOKIE_MASK_CONCERN, e.instructions) for k, e in self.flows.items()}

    def expected(self, flows: list[FlowSpec]) -> dict:
        """key -> (concern cookie, instructions), for what it must hold to run ``flows``."""
        out = {}
        for spec in flows:
            msg = ofdriver.flow_mod(self, spec)
            out[_key(msg.table_id, msg.priority, msg.match)] = (
                spec.cookie & COOKIE_MASK_CONCERN,
                _instructions(msg),
            )
        return out

    def epochs(self) -> set[int]:
        """The cookie epochs (low bits) of what the switch holds."""
        return {e.cookie & ((1 << ofdriver.EPOCH_BITS) - 1) for e in self.flows.values()}


class Event:
    """An os-ken event carrying ``msg``."""

    def __init__(self, msg):
        self.msg = msg


class Msg:
    """The fields of a switch-to-controller message the handlers read."""

    def __init__(self, datapath, **fields):
        self.datapath = datapath
        self.__dict__.update(fields)


class PortDesc:
    def __init__(self, name: str, port_no: int, state: int):
        self.name, self.port_no, self.state = name.encode(), port_no, state
