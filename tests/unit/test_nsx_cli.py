"""The NSX controller's tables as its CLI lists them (``nsx tables``), from
the tables the controller computes for the nsx-overlay lab (no root)."""

from controller.state import ControllerState
from tests.unit.test_overlay_flows import LAB_DATA
from vlab.lab.load import parse_lab
from vlab.shell.nsxcli import tables_text


def _blocks() -> dict[str, list[str]]:
    tables = ControllerState(parse_lab(LAB_DATA)).nsx_tables().to_json()
    # What hostd's guest reports (VMware Tools) teach it at run time.
    tables["web"]["arp_table"] = [{"ip": "10.1.1.12", "mac": "00:50:56:a1:00:02", "sources": ["vmtools"]}]
    text = tables_text(tables)
    return {b.splitlines()[0]: b.splitlines()[1:] for b in text.split("\n\n")}


def test_each_logical_switch_lists_its_vtep_mac_and_arp_tables_under_the_controller_cli_commands():
    blocks = _blocks()
    assert list(blocks) == [
        "Logical switch web (VNI 5001), ARP suppression on",
        "Logical switch app (VNI 5002), ARP suppression on",
    ]
    web = blocks["Logical switch web (VNI 5001), ARP suppression on"]
    headings = [line for line in web if line.startswith("# ")]
    assert headings == [
        f"# show control-cluster logical-switches {t}-table 5001" for t in ("vtep", "mac", "arp")
    ]
    vtep_at = web.index(headings[0])
    assert web[vtep_at + 1].split() == ["VNI", "IP", "Segment", "MAC", "Host", "UTEP"]
    rows = [line.split() for line in web[vtep_at + 2 : web.index(headings[1])]]
    assert [(r[1], r[2], r[4]) for r in rows] == [
        ("172.16.200.11", "172.16.200.0/24", "esx1"),
        ("172.16.200.12", "172.16.200.0/24", "esx2"),
        ("172.16.201.13", "172.16.201.0/24", "esx3"),
        ("172.16.201.14", "172.16.201.0/24", "esx4"),
    ]
    # One UTEP per segment.
    assert sorted(r[2] for r in rows if r[-1] == "yes") == ["172.16.200.0/24", "172.16.201.0/24"]
    arp_at = web.index(headings[2])
    assert web[arp_at + 1].split() == ["VNI", "IP", "MAC", "Sources"]
    assert [r.split() for r in web[arp_at + 2 :]] == [["5001", "10.1.1.12", "00:50:56:a1:00:02", "vmtools"]]
