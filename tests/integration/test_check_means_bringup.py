"""Property: a lab that `vlab check` accepts brings up. Bring-up must never
refuse what the checker let through (a name Linux cannot take, say), so a
seeded sample of generated labs is checked rootless and every accepted one
is brought up for real.

The generator edits what ends up in Linux and OVS names, near their limits:
VM, vNIC and VMkernel adapter names on ``two-hosts``, and the names of
router interfaces that carry a virtual gateway (a device named after the
interface) on ``vmsc``."""

from __future__ import annotations

import copy
import random
import string
from pathlib import Path

import yaml

from experiments.common import lab_session
from vlab.lab.load import LabError, parse_lab

LABS = Path(__file__).resolve().parents[2] / "labs"
SEED, ACCEPTED_PER_BASE, TRIES = 20261201, 3, 200


def _name(rng: random.Random, longest: int) -> str:
    first = rng.choice(string.ascii_letters)
    rest = "".join(
        rng.choice(string.ascii_letters + string.digits + "-_") for _ in range(rng.randint(0, longest - 1))
    )
    return first + rest


def _two_hosts(rng: random.Random) -> dict:
    data = yaml.safe_load((LABS / "two-hosts.yaml").read_text())
    for vm in data["vms"]:
        vm["name"] = _name(rng, 14)
        for nic in vm["vnics"]:
            nic["name"] = _name(rng, 14)
    for host in data["esxi_hosts"]:
        for vmk in host["vmkernel"]:
            vmk["name"] = "vmk" + str(rng.randint(0, 10 ** rng.randint(1, 13)))
    return data


def _vmsc(rng: random.Random) -> dict:
    data = yaml.safe_load((LABS / "vmsc.yaml").read_text())
    for host in data["hosts"]:
        if host["name"] in ("gw1", "gw2"):
            for intf in host["interfaces"]:
                intf["name"] = _name(rng, 16)
    return data


def _accepted(make) -> list[dict]:
    rng, out, rejected = random.Random(SEED), [], 0
    for _ in range(TRIES):
        data = make(rng)
        try:
            parse_lab(copy.deepcopy(data))
        except LabError:
            rejected += 1
            continue
        out.append(data)
        if len(out) == ACCEPTED_PER_BASE:
            break
    # The generator reaches past the limits: some of its labs must be refused.
    assert rejected > 0 and len(out) == ACCEPTED_PER_BASE, (rejected, len(out))
    return out


def test_every_generated_lab_the_checker_accepts_brings_up(tmp_path):
    for base, make in (("two-hosts", _two_hosts), ("vmsc", _vmsc)):
        for i, data in enumerate(_accepted(make)):
            path = tmp_path / f"{base}-{i}.yaml"
            path.write_text(yaml.safe_dump(data))
            with lab_session(path) as net:
                # Up means synced and probed (lab_session); and every vNIC
                # of the generated names has its uplink.
                pinned = {p for pins in net.control.applied()["pinning"].values() for p in pins}
                assert {
                    f"{vm['name']}-{nic.get('name', 'eth0')}" for vm in data["vms"] for nic in vm["vnics"]
                } <= pinned, path
