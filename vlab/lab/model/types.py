"""Field types of the lab file: names, VLANs, MACs, addresses, speeds, and
the base of every lab object (strict, unknown keys refused, frozen)."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
)

from vlab.naming import IFNAMSIZ

_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
_VMK_RE = re.compile(r"vmk[0-9]+")


def _name(value: str) -> str:
    # Checked here rather than with StringConstraints so the user reads a
    # sentence, not a regular expression.
    if not _NAME_RE.fullmatch(value):
        raise ValueError("must start with a letter and contain only letters, digits, '-' and '_'")
    if len(value) > IFNAMSIZ:
        raise ValueError(
            f"must be at most {IFNAMSIZ} characters, as it becomes part of Linux interface names"
        )
    return value


def _vmk_name(value: str) -> str:
    if not _VMK_RE.fullmatch(value):
        raise ValueError("must be vmk followed by a number, like vmk0")
    return value


# Node and object names: they end up in Linux interface names and OVS port
# names, so keep them to letters, digits, '-' and '_' (no dots, no spaces).
Name = Annotated[StrictStr, AfterValidator(_name)]
VmkName = Annotated[StrictStr, AfterValidator(_vmk_name)]
# A port group's VLAN: 0 = external switch tagging (EST), 1-4094 = virtual
# switch tagging (VST), 4095 = virtual guest tagging (VGT, a trunk to the guest).
EST_VLAN, VGT_VLAN = 0, 4095
VlanId = Annotated[StrictInt, Field(ge=EST_VLAN, le=VGT_VLAN)]
SwitchVlan = Annotated[StrictInt, Field(ge=1, le=4094)]
PortNumber = Annotated[StrictInt, Field(ge=1, le=4096)]
Mtu = Annotated[StrictInt, Field(ge=1280, le=9000)]
# The distributed firewall rules a lab may have: rule i of the policy gets an
# OpenFlow priority of its own, in a band that holds this many
# (controller.pipeline).
MAX_FIREWALL_RULES = 1000


def _mac(value: str) -> str:
    parts = value.split(":")
    if len(parts) != 6 or not all(len(p) == 2 for p in parts):
        raise ValueError("MAC address must look like 00:50:56:aa:bb:cc")
    try:
        octets = [int(p, 16) for p in parts]
    except ValueError:
        raise ValueError("MAC address must look like 00:50:56:aa:bb:cc") from None
    if octets[0] & 1:
        raise ValueError("MAC address must be unicast (first octet even)")
    if octets == [0] * 6:
        raise ValueError("MAC address must not be all zeros")
    return value.lower()


def _text(value: object) -> str:
    # Same wording as pydantic's own string_type error; the loader appends
    # the value it got.
    if not isinstance(value, str):
        raise ValueError("must be a valid string")
    return value


def _ipv4_interface(value: object) -> ipaddress.IPv4Interface:
    value = _text(value)
    if "/" not in value:
        raise ValueError("must include the prefix length, like 10.0.0.1/24")
    try:
        iface = ipaddress.IPv4Interface(value)
    except ValueError as exc:
        raise ValueError(f"not an IPv4 address/prefix: {exc}") from None
    if iface.network.prefixlen < 31 and iface.ip in (
        iface.network.network_address,
        iface.network.broadcast_address,
    ):
        raise ValueError("must not be the network or broadcast address of its subnet")
    return iface


def _ipv4_address(value: object) -> ipaddress.IPv4Address:
    value = _text(value)
    try:
        return ipaddress.IPv4Address(value)
    except ValueError as exc:
        raise ValueError(f"not an IPv4 address: {exc}") from None


def _ipv4_network(value: object) -> ipaddress.IPv4Network:
    value = _text(value)
    try:
        return ipaddress.IPv4Network(value)
    except ValueError as exc:
        raise ValueError(f"not an IPv4 network: {exc}") from None


def _speed(value: int) -> int:
    if value not in (1, 10, 25):
        raise ValueError("must be 1, 10 or 25")
    return value


Mac = Annotated[StrictStr, AfterValidator(_mac)]
# Not Literal[1, 10, 25]: a Literal compares with ==, so it takes True (YAML
# 'yes') as 1 and 10.0 as 10; a strict int refuses both.
Speed = Annotated[StrictInt, AfterValidator(_speed)]
IPv4If = Annotated[ipaddress.IPv4Interface, BeforeValidator(_ipv4_interface)]
IPv4Addr = Annotated[ipaddress.IPv4Address, BeforeValidator(_ipv4_address)]
IPv4Net = Annotated[ipaddress.IPv4Network, BeforeValidator(_ipv4_network)]
Policy = Literal["accept", "reject"]


class LabModel(BaseModel):
    """Base of every lab object: unknown keys are errors, objects are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)
