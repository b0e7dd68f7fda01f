"""Translate library-independent ``FlowSpec``s into os-ken OpenFlow 1.3 messages.

The only module that knows os-ken's message classes; compilers never import it.
"""

from __future__ import annotations

from typing import Optional

from os_ken.ofproto import nicira_ext

from .pipeline import COOKIE_MASK_CONCERN, FlowSpec

CT_COMMIT = 1  # NX_CT_F_COMMIT
CT_NO_RECIRC = 255  # NX_CT_RECIRC_NONE
NX_IN_PORT = 0xFFF8  # OFPP_IN_PORT in 16-bit (Nicira) port fields
# enum nx_hash_fields (OVS nicira-ext.h; os-ken names only the first two).
NX_HASH_FIELDS = {
    "eth_src": 0,
    "symmetric_l4": 1,
    "symmetric_l3l4": 2,
    "symmetric_l3l4+udp": 3,
    "nw_src": 4,
    "nw_dst": 5,
    "symmetric_l3": 6,
}


def _action(ofp, parser, action: tuple):
    kind = action[0]
    if kind == "output" and action[1] == "controller":
        # The whole frame: the controller parses ARP and DHCP bodies.
        return parser.OFPActionOutput(ofp.OFPP_CONTROLLER, ofp.OFPCML_NO_BUFFER)
    if kind == "output":
        port = ofp.OFPP_IN_PORT if action[1] == "in_port" else action[1]
        return parser.OFPActionOutput(port)
    if kind == "move":
        return parser.NXActionRegMove(src_field=action[1], dst_field=action[2], n_bits=action[3])
    if kind == "dec_ttl":
        return parser.OFPActionDecNwTtl()
    if kind == "push_vlan":
        return parser.OFPActionPushVlan(action[1])
    if kind == "pop_vlan":
        return parser.OFPActionPopVlan()
    if kind == "set_field" and action[1] == "in_port":
        # OpenFlow 1.3 does not let set_field write in_port; OVS's Nicira
        # register load does (its 16-bit NXM_OF_IN_PORT).
        return parser.NXActionRegLoad(
            ofs_nbits=nicira_ext.ofs_nbits(0, 15), dst="in_port_nxm", value=action[2]
        )
    if kind == "set_field":
        return parser.OFPActionSetField(**{action[1]: action[2]})
    if kind == "resubmit":
        # A Nicira action: its in_port is 16 bits (0xfff8 = "the packet's own").
        return parser.NXActionResubmitTable(in_port=NX_IN_PORT, table_id=action[1])
    if kind == "ct":
        # ("ct", commit, zone, table): track in ``zone``; with a table the
        # tracked packet continues there (a fork: this action list goes on
        # with the untracked original).
        _, commit, zone, table = action
        return parser.NXActionCT(
            flags=CT_COMMIT if commit else 0,
            zone_src="",
            zone_ofs_nbits=zone,
            alg=0,
            actions=[],
            recirc_table=CT_NO_RECIRC if table is None else table,
        )
    if kind == "bundle":
        # ("bundle", fields, basis, members): OVS bundle(fields, basis, hrw,
        # ofport, members:...), one live member per packet.
        _, fields, basis, members = action
        return parser.NXActionBundle(
            algorithm=nicira_ext.NX_BD_ALG_HRW,  # highest random weight
            fields=NX_HASH_FIELDS[fields],
            basis=basis,
            slave_type=nicira_ext.NXM_OF_IN_PORT,  # members are OpenFlow ports
            n_slaves=len(members),
            ofs_nbits=0,
            dst=0,
            slaves=list(members),
        )
    if kind == "output_trunc":
        # ("output_trunc", port, max_len): OVS output(port=..,max_len=..).
        return parser.NXActionOutputTrunc(port=action[1], max_len=action[2])
    if kind == "clone":
        # ("clone", actions): OVS clone(...); what the inner actions change
        # (tunnel metadata, VLAN tag) does not outlive them.
        return _clone_class(parser)([_action(ofp, parser, a) for a in action[1]])
    raise ValueError(f"unknown action {action!r}")


NXAST_CLONE = 42
_CLONES: dict = {}


def _clone_class(parser):
    """os-ken has no NXActionClone: OVS's nx_action_clone is the NX header,
    6 bytes of padding, then the nested actions."""
    if parser not in _CLONES:

        class NXActionClone(parser.NXAction):
            _subtype = NXAST_CLONE

            def __init__(self, actions, type_=None, len_=None, experimenter=None, subtype=None):
                super().__init__()
                self.actions = actions

            def serialize_body(self):
                data = bytearray(6)
                for a in self.actions:
                    a.serialize(data, len(data))
                return data

        _CLONES[parser] = NXActionClone
    return _CLONES[parser]


def flow_mod(datapath, spec: FlowSpec, epoch: int = 0):
    """An OFPFC_ADD message for ``spec``; ``epoch`` goes into the cookie's low
    bits (see ``delete_other_epochs``)."""
    ofp, parser = datapath.ofproto, datapath.ofproto_parser
    instructions = []
    if spec.actions:
        instructions.append(
            parser.OFPInstructionActions(
                ofp.OFPIT_APPLY_ACTIONS, [_action(ofp, parser, a) for a in spec.actions]
            )
        )
    if spec.goto is not None:
        instructions.append(parser.OFPInstructionGotoTable(spec.goto))
    return parser.OFPFlowMod(
        datapath=datapath,
        cookie=spec.cookie | epoch,
        table_id=spec.table,
        priority=spec.priority,
        match=parser.OFPMatch(**dict(spec.match)),
        instructions=instructions,
        command=ofp.OFPFC_ADD,
    )


def delete_strict(datapath, spec: FlowSpec):
    """Remove exactly the flow with ``spec``'s table, priority and match."""
    ofp, parser = datapath.ofproto, datapath.ofproto_parser
    return parser.OFPFlowMod(
        datapath=datapath,
        table_id=spec.table,
        priority=spec.priority,
        command=ofp.OFPFC_DELETE_STRICT,
        out_port=ofp.OFPP_ANY,
        out_group=ofp.OFPG_ANY,
        match=parser.OFPMatch(**dict(spec.match)),
    )


def packet_out(datapath, port: Optional[int], frame: bytes, via: tuple = ()):
    """Send ``frame`` out of ``port`` as if the host itself transmitted it, or
    by the ``via`` actions (FlowSpec actions: a LAG's bundle)."""
    ofp, parser = datapath.ofproto, datapath.ofproto_parser
    actions = [_action(ofp, parser, a) for a in via] if via else [parser.OFPActionOutput(port)]
    return parser.OFPPacketOut(
        datapath=datapath,
        buffer_id=ofp.OFP_NO_BUFFER,
        in_port=ofp.OFPP_CONTROLLER,
        actions=actions,
        data=frame,
    )


EPOCH_BITS = 16


def delete_other_epochs(datapath, concern_cookie: int, epoch: int) -> list:
    """Messages deleting every flow of a concern whose cookie epoch is not
    ``epoch``: one DELETE per epoch bit, matching flows where that bit
    differs, so any other epoch differs in at least one and is removed.
    Used after re-adding every flow with a fresh epoch: a resync without
    delete-all, so established traffic never meets an empty table."""
    ofp, parser = datapath.ofproto, datapath.ofproto_parser
    msgs = []
    for bit in range(EPOCH_BITS):
        flipped = (epoch ^ (1 << bit)) & (1 << bit)
        msgs.append(
            parser.OFPFlowMod(
                datapath=datapath,
                table_id=ofp.OFPTT_ALL,
                command=ofp.OFPFC_DELETE,
                cookie=concern_cookie | flipped,
                cookie_mask=COOKIE_MASK_CONCERN | (1 << bit),
                out_port=ofp.OFPP_ANY,
                out_group=ofp.OFPG_ANY,
                match=parser.OFPMatch(),
            )
        )
    return msgs


def port_descriptions(datapath):
    """Ask for every port's description (name, link state)."""
    return datapath.ofproto_parser.OFPPortDescStatsRequest(datapath, 0)


def port_stats(datapath):
    """Ask for every port's counters (load-based teaming)."""
    ofp = datapath.ofproto
    return datapath.ofproto_parser.OFPPortStatsRequest(datapath, 0, ofp.OFPP_ANY)


def barrier(datapath):
    return datapath.ofproto_parser.OFPBarrierRequest(datapath)
