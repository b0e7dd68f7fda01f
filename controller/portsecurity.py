"""vSphere's layer-2 security policy on one vSwitch port, as the vSwitch
enforces it: one implementation for standard and distributed port groups and
NSX logical switches (NSX-V backs a logical switch with a port group of the
prepared distributed switch, so its ports obey the same policy).

The vSphere Networking guide, "Security Policy":

* **MAC address changes** decide which address the switch holds for the
  port, its *effective MAC*. Accept: the address the guest loaded into its
  NIC ("frames to the new MAC address are received"). Reject: the change is
  refused, the effective MAC stays the configured (.vmx) one, and while the
  guest's address differs from it "all inbound frames are dropped", until
  the guest changes it back.
* **Forged transmits** = reject: "any outbound frame with a source MAC
  address that is different from the one currently set on the adapter is
  dropped", compared with the effective MAC. So with MAC changes = accept a
  guest that changed its MAC sends from the new address legitimately and the
  old one is the forged one; with MAC changes = reject only the .vmx MAC may
  send.
* **Promiscuous mode** = accept, with the guest's NIC in promiscuous mode:
  the port also receives the frames of its VLAN that the switch handles.

Only vNICs are policed: a VMkernel adapter's MAC is the hypervisor's own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from vlab.bindings import PortBinding, SwitchBinding
from vlab.lab.resolve import EffectiveSecurity


@dataclass(frozen=True)
class PortSecurity:
    """One port under its effective security policy."""

    port: PortBinding
    policy: EffectiveSecurity

    @staticmethod
    def of(binding: SwitchBinding, port: PortBinding) -> "PortSecurity":
        return PortSecurity(port, binding.security(port))

    @property
    def effective_mac(self) -> str:
        """The unicast address the switch holds for the port: frames to it are
        delivered, frames from it are not forged."""
        p = self.port
        mac = p.guest_mac if self.policy.mac_changes == "accept" else p.mac
        return mac.lower()

    @property
    def promiscuous(self) -> bool:
        return self.policy.promiscuous == "accept" and self.port.guest.promiscuous

    def inbound_refusal(self) -> Optional[str]:
        """Why nothing is delivered to the port (None: the policy lets
        frames to its effective MAC in)."""
        p = self.port
        if self.policy.mac_changes == "reject" and p.guest_mac.lower() != p.mac.lower():
            return (
                f"MAC address changes = reject: the guest changed {p.name}'s MAC to "
                f"{p.guest_mac.lower()} (configured {p.mac.lower()}), so nothing is delivered to it"
            )
        return None

    def forged_refusal(self, eth_src: str) -> Optional[str]:
        """Why a frame the port sends from ``eth_src`` is dropped as forged
        (None: it is not)."""
        if not self.checks_source or eth_src.lower() == self.effective_mac:
            return None
        p, mac = self.port, self.effective_mac
        why = f"forged transmits = reject: source MAC {eth_src.lower()} is not {p.name}'s MAC {mac}"
        if mac != p.mac.lower():
            why += f" (its effective MAC: MAC changes = accept, the guest changed it from {p.mac.lower()})"
        return why

    @property
    def checks_source(self) -> bool:
        """Does the switch drop frames this port sends from any other MAC?"""
        return self.port.kind == "vnic" and self.policy.forged_transmits == "reject"

    def source_match(self) -> dict:
        """The OpenFlow match fields a frame from the port must carry to get in."""
        return {"eth_src": self.effective_mac} if self.checks_source else {}
