"""vSphere traffic shaping as Linux tc: each shaped direction of a port is a
token bucket filter (``tbf``) qdisc on the port's cable.

vSphere's shaper and tbf are the same machine. A port that sends below its
average bandwidth gains a "burst bonus" of up to ``burst size`` bytes; while
it has bonus it may send faster than the average, up to the peak bandwidth.
tbf's ``rate`` and ``burst`` are the average and that bonus (its bucket
fills at ``rate`` up to ``burst`` bytes); ``peakrate`` caps the sending rate
with a second, small bucket (``mtu``). So after idle a port sends ``burst``
bytes more than the average would allow, at the peak rate, then settles to
the average. With peak = average there is no bonus to spend (the kernel
refuses a peak equal to the rate): the bucket is small.

Small is ``SLACK_FRAMES`` frames, not one: a bucket of one frame loses the
tokens of every dequeue the kernel's timer makes late, and the port then
runs below its rate (measured here with one frame: 19.1 Mbit/s for a
20 Mbit/s average, 28.3 for a 30 Mbit/s peak). Eight frames let a port send
up to eight frames back to back, 5 ms of traffic at 20 Mbit/s.

Where each direction is shaped (the port's cable: a veth, or an internal port):

* ingress, what a port sends into the switch (a standard switch's only
  direction): on the sending end, the VM's vNIC interface in the VM's
  namespace, or a VMkernel adapter's internal port in the host namespace.
  OVS's userspace datapath reads frames off a port with a packet socket,
  which sees them before any ingress qdisc could hold them, so the
  switch's end of the cable cannot shape what it receives.
* egress, what the switch delivers to a port: on the switch's end, the vNIC
  backend, through whose qdisc OVS transmits. A VMkernel adapter's internal
  port has no such end (OVS writes into it past any qdisc): ``vlab check``
  refuses egress shaping on a port group with one, and any shaping on the
  VTEP's port group (OVS's userspace VXLAN encapsulates and sends without
  passing the vmk's device, so its qdisc would see no overlay traffic).

A new qdisc starts with a full bucket: a port plugged in anew (vMotion,
reconnect) has its whole burst bonus, as a new port would.

``link_scale`` multiplies every bandwidth and byte count of a policy, as it
multiplies link speeds: shaping keeps its ratio to the links, and a burst
lasts as long as it would unscaled (bytes / (peak - average)). Rates count
Ethernet frames without preamble and FCS, as tc does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

from vlab import naming

from .model import EsxiHost, Lab, VmkernelAdapter, Vnic
from .resolve import Shaper, switch_of_port_group

KBIT = 1000  # vSphere's Kbit/s
KBYTE = 1024  # vSphere's KB (the API's burstSize is bytes; the client shows KB)
ETH_OVERHEAD = 18  # Ethernet header and one 802.1Q tag (VGT guests tag their own)
# The queue behind a shaped port's bucket (tbf's ``limit``): 50 ms at the
# average rate, and at least two of the 64 KiB packets a guest's TCP hands
# its NIC (tbf cuts such a packet into frames and must queue them all, or
# the guest's TCP sees a loss for every one; measured with 50 ms alone at
# 5 Mbit/s: ~20,000 retransmits in 6 s). Not the burst size on top, as tc's
# ``latency`` would add: a port that spent its bonus would then queue
# seconds of traffic. ESXi does not document its shaper's queue.
QUEUE_MS = 50
MIN_QUEUE_BYTES = 2 * 65536
# tc passes the bucket and the queue to the kernel as 32-bit byte counts.
MAX_TC_BYTES = 2**32 - 1
SLACK_FRAMES = 8
# tbf keeps its bucket as transmit time in 32-bit scheduler ticks (64 ns on
# these kernels, /proc/net/psched): a bigger bucket silently wraps around.
MAX_BURST_S = 270.0


@dataclass(frozen=True)
class Tbf:
    """The tbf qdisc that emulates one shaped direction, after ``link_scale``."""

    rate_bps: int
    peak_bps: Optional[int]  # None: peak = average, no burst bonus
    burst_bytes: int
    frame_bytes: int  # the largest frame on the port

    def args(self) -> list[str]:
        """``tc qdisc replace dev DEV root`` + these arguments."""
        args = ["tbf", "rate", f"{self.rate_bps}bit", "burst", str(self.burst_bytes)]
        if self.peak_bps is not None:
            args += ["peakrate", f"{self.peak_bps}bit", "mtu", str(SLACK_FRAMES * self.frame_bytes)]
        return args + ["limit", str(self.queue_bytes)]

    @property
    def queue_bytes(self) -> int:
        """tbf's ``limit``: the bytes that may wait behind an empty bucket."""
        return max(round(self.rate_bps / 8 * QUEUE_MS / 1000), MIN_QUEUE_BYTES)


def frame_bytes(mtu: int) -> int:
    """The largest frame on a port of a vSwitch with ``mtu``."""
    return mtu + ETH_OVERHEAD


def tbf(shaper: Shaper, link_scale: float, mtu: int) -> Tbf:
    """The qdisc of ``shaper`` on a port of a vSwitch with ``mtu``."""
    rate = round(shaper.average_kbps * KBIT * link_scale)
    peak = round(shaper.peak_kbps * KBIT * link_scale)
    frame = frame_bytes(mtu)
    if peak <= rate:
        return Tbf(rate_bps=rate, peak_bps=None, burst_bytes=SLACK_FRAMES * frame, frame_bytes=frame)
    return Tbf(
        rate_bps=rate,
        peak_bps=peak,
        burst_bytes=round(shaper.burst_kb * KBYTE * link_scale),
        frame_bytes=frame,
    )


def problems(shaper: Shaper, link_scale: float, mtu: int) -> list[str]:
    """Why ``shaper`` cannot be emulated faithfully on a port of a vSwitch
    with ``mtu`` at ``link_scale`` (empty if it can)."""
    out = []
    if shaper.peak_kbps < shaper.average_kbps:
        out.append(
            f"peak_bandwidth {shaper.peak_kbps} Kbit/s is below average_bandwidth "
            f"{shaper.average_kbps} Kbit/s (vSphere: the peak can never be smaller than the average)"
        )
        return out
    q = tbf(shaper, link_scale, mtu)
    if q.peak_bps is None:
        return out
    if q.burst_bytes < q.frame_bytes:
        out.append(
            f"burst_size {shaper.burst_kb} KB x link_scale {link_scale:g} = {q.burst_bytes} bytes, "
            f"less than one {q.frame_bytes}-byte frame of this vSwitch's MTU {mtu}: "
            "no burst could ever be sent (raise burst_size or link_scale)"
        )
    if q.burst_bytes > MAX_TC_BYTES:
        out.append(
            f"burst_size {shaper.burst_kb} KB x link_scale {link_scale:g} = {q.burst_bytes} bytes; "
            f"the emulated shaper (Linux tbf) holds at most {MAX_TC_BYTES} (lower burst_size)"
        )
        return out
    burst_s = q.burst_bytes * 8 / q.rate_bps
    if burst_s > MAX_BURST_S:
        out.append(
            f"burst_size {shaper.burst_kb} KB at average_bandwidth {shaper.average_kbps} Kbit/s is "
            f"{burst_s:.0f} s of burst bonus; the emulated shaper (Linux tbf) holds at most "
            f"{MAX_BURST_S:g} s (lower burst_size or raise average_bandwidth)"
        )
    return out


def tc_replace(dev: str, q: Optional[Tbf]) -> str:
    """The shell command that gives ``dev`` the qdisc ``q`` (or none: the
    kernel's default), whatever it had before."""
    if q is None:
        return f"tc qdisc del dev {dev} root 2>/dev/null; true"
    return " ".join(["tc", "qdisc", "replace", "dev", dev, "root", *q.args()])


@dataclass(frozen=True)
class PortQdisc:
    """One direction of one port's cable: the device that carries it, in
    the namespace of ``node``, and its qdisc (``None``: unshaped)."""

    node: str
    dev: str
    direction: Literal["ingress", "egress"]  # port -> switch, switch -> port
    qdisc: Optional[Tbf]


def _qdisc(shaper: Optional[Shaper], link_scale: float, mtu: int) -> Optional[Tbf]:
    return None if shaper is None else tbf(shaper, link_scale, mtu)


def vnic_qdiscs(lab: Lab, host: EsxiHost, vm: str, nic: Vnic) -> list[PortQdisc]:
    """Both directions of ``vm``'s ``nic`` while it runs on ``host`` (both,
    so a move to an unshaped port group removes what the cable had). A vNIC
    on an NSX logical switch is unshaped: NSX-V backs a logical switch with
    a distributed port group of its own, and the lab format gives logical
    switches no shaping policy."""
    if nic.port_group is None:
        ingress = egress = None
    else:
        sw, pg = switch_of_port_group(lab, host, nic.port_group)
        ingress = _qdisc(pg.shaping.ingress, lab.link_scale, sw.mtu)
        egress = _qdisc(pg.shaping.egress, lab.link_scale, sw.mtu)
    return [
        PortQdisc(vm, nic.name, "ingress", ingress),
        PortQdisc(host.name, naming.vnic_port(vm, nic.name), "egress", egress),
    ]


def vmk_qdisc(lab: Lab, host: EsxiHost, vmk: VmkernelAdapter) -> PortQdisc:
    """What a VMkernel adapter sends into its switch (egress is refused by
    ``vlab check``)."""
    sw, pg = switch_of_port_group(lab, host, vmk.port_group)
    return PortQdisc(host.name, vmk.name, "ingress", _qdisc(pg.shaping.ingress, lab.link_scale, sw.mtu))


def placed_qdiscs(lab: Lab, host_of: Optional[dict[str, str]] = None) -> list[PortQdisc]:
    """Both directions of every vNIC and vmk cable, shaped or not, with each
    vNIC on the host ``host_of`` gives (its port name -> ESXi host; missing:
    the VM's ``host``): what the cables must hold now, so a change of policy
    can be applied as the difference (``vlab.operations.reconfigure``)."""
    hosts, host_of = {h.name: h for h in lab.esxi_hosts}, host_of or {}
    out = [
        q
        for vm in lab.vms
        for nic in vm.vnics
        for q in vnic_qdiscs(
            lab, hosts[host_of.get(naming.vnic_port(vm.name, nic.name), vm.host)], vm.name, nic
        )
    ]
    return out + [vmk_qdisc(lab, h, v) for h in lab.esxi_hosts for v in h.vmkernel]


def lab_qdiscs(lab: Lab) -> list[PortQdisc]:
    """Every shaped direction of a lab as it starts (VMs on their ``host``)."""
    return [q for q in placed_qdiscs(lab) if q.qdisc is not None]
