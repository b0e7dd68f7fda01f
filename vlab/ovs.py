"""One Open vSwitch instance: ovsdb-server + ovs-vswitchd with a private run
directory, running inside one network namespace.

Each emulated ESXi host needs its own instance: userspace VXLAN tunnels and
routes of several "hosts" collide inside one ovs-vswitchd (README, "Design notes").
Control commands (ovs-vsctl, ovs-ofctl, ovs-appctl) reach the daemons through
unix sockets in the run directory, so they work from the root namespace.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path
from typing import Optional

from vlab.protocols import IP_PROTOCOLS

SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
_PORT_LINE = re.compile(r"\s*port\s+([^:]+):")
_FLOW_COOKIE = re.compile(r"cookie=0x([0-9a-f]+)")
_FLOW_PACKETS = re.compile(r"n_packets=(\d+)")
_FLOW_IN_PORT = re.compile(r"[ ,]in_port=(\d+)")


def parse_flow_stats(line: str) -> Optional[tuple[int, Optional[int], int, str]]:
    """One ``ovs-ofctl --no-names dump-flows`` line as (cookie, in_port or
    None, packets, actions); None for a line that is no flow."""
    head, sep, actions = line.partition(" actions=")
    cookie, packets = _FLOW_COOKIE.search(head), _FLOW_PACKETS.search(head)
    if not sep or cookie is None or packets is None:
        return None
    in_port = _FLOW_IN_PORT.search(head)
    return (
        int(cookie.group(1), 16),
        int(in_port.group(1)) if in_port else None,
        int(packets.group(1)),
        actions.strip(),
    )


_COUNTER = re.compile(r"(pkts|bytes|drop|errs)=(\d+|\?)")

# OVS resets a port's qdisc when it adds the port, which would silently undo
# Mininet's htb shaping (TCLink) and
# traffic shaping's tbf (vlab.lab.shaping). QoS type linux-noop tells OVS that traffic
# control on the port is managed by someone else.
KEEP_QDISC_RECORD = ("--", "--id=@keepqdisc", "create", "qos", "type=linux-noop")


def keep_qdisc(port: str) -> list[str]:
    """ovs-vsctl arguments that keep ``port``'s qdisc (needs ``KEEP_QDISC_RECORD``
    in the same transaction)."""
    return ["--", "set", "port", port, "qos=@keepqdisc"]


class OvsError(RuntimeError):
    pass


class OvsInstance:
    """ovsdb-server and ovs-vswitchd for one node, files under ``rundir``."""

    def __init__(self, node, rundir: Path):
        self.node = node  # a Mininet node: commands run in its namespace
        self.dir = Path(rundir)
        self.db_sock = self.dir / "db.sock"
        self.vswitchd_ctl = self.dir / "ovs-vswitchd.ctl"
        self.ovsdb_ctl = self.dir / "ovsdb-server.ctl"
        self.procs: list[subprocess.Popen] = []

    # -- lifecycle ---------------------------------------------------------
    def start(self, timeout: float = 20.0) -> None:
        """Start both daemons as children of this process (not ``--detach``:
        a detached daemon is re-parented to PID 1, which may never reap it)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        d = self.dir
        self._node_cmd(f"ovsdb-tool create {d}/conf.db {SCHEMA}")
        self.procs.append(
            self._spawn(
                [
                    "ovsdb-server",
                    f"{d}/conf.db",
                    f"--remote=punix:{self.db_sock}",
                    f"--pidfile={d}/ovsdb-server.pid",
                    f"--unixctl={self.ovsdb_ctl}",
                    f"--log-file={d}/ovsdb-server.log",
                    "--no-chdir",
                ],
                "ovsdb-server",
            )
        )
        self._wait_for(self.db_sock, timeout)
        self.vsctl("--no-wait", "init")
        self.procs.append(
            self._spawn(
                [
                    "ovs-vswitchd",
                    f"unix:{self.db_sock}",
                    f"--pidfile={d}/ovs-vswitchd.pid",
                    f"--unixctl={self.vswitchd_ctl}",
                    f"--log-file={d}/ovs-vswitchd.log",
                    "--no-chdir",
                ],
                "ovs-vswitchd",
            )
        )
        self._wait_for(self.vswitchd_ctl, timeout)

    def _spawn(self, argv: list[str], name: str) -> subprocess.Popen:
        # OVS_RUNDIR puts bridge .mgmt sockets in our directory, not /var/run.
        env = {
            **os.environ,
            "OVS_RUNDIR": str(self.dir),
            "OVS_LOGDIR": str(self.dir),
            "OVS_DBDIR": str(self.dir),
        }
        out = open(self.dir / f"{name}.stderr", "w")
        return self.node.popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env)

    def _wait_for(self, path: Path, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not path.exists():
            dead = [p for p in self.procs if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                logs = " ".join(str(f) for f in self.dir.glob("*.log"))
                raise OvsError(
                    f"{self.node.name}: {path.name} did not appear "
                    f"(exited: {[p.args[0] for p in dead]}); see {logs}"
                )
            time.sleep(0.02)

    def stop(self, timeout: float = 5.0) -> None:
        """Ask both daemons to exit, then make sure they did (and reap them)."""
        for ctl in (self.vswitchd_ctl, self.ovsdb_ctl):
            if ctl.exists():
                subprocess.run(
                    ["ovs-appctl", "-T", "5", "-t", str(ctl), "exit"], capture_output=True, timeout=10
                )
        for proc in reversed(self.procs):
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()

    def _node_cmd(self, cmd: str) -> None:
        out = self.node.cmd(cmd + " 2>&1; echo rc=$?").strip()
        if not out.endswith("rc=0"):
            raise OvsError(f"{self.node.name}: `{cmd}` failed: {out}")

    # -- control -----------------------------------------------------------
    def _run(self, argv: list[str]) -> str:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        if proc.returncode != 0:
            who = self.node.name if self.node is not None else self.dir.name
            raise OvsError(f"{who}: {' '.join(argv)}: {proc.stderr.strip()}")
        return proc.stdout

    def vsctl(self, *args: str) -> str:
        return self._run(["ovs-vsctl", "--timeout=20", f"--db=unix:{self.db_sock}", *args])

    def ofctl(self, command: str, bridge: str, *args: str) -> str:
        return self._run(["ovs-ofctl", "-O", "OpenFlow13", command, f"unix:{self.dir}/{bridge}.mgmt", *args])

    def appctl(self, *args: str) -> str:
        return self._run(["ovs-appctl", "-t", str(self.vswitchd_ctl), *args])

    def conntrack(self, zone: int) -> list[list]:
        """Connections tracked in ``zone`` as [proto, src, dst, sport, dport,
        timeout] (original direction; ports None for ICMP; timeout: seconds
        the entry has left, which ``-s`` prints)."""
        return parse_conntrack(self.appctl("dpctl/dump-conntrack", "-s", f"zone={zone}"))

    def flow_stats(self, bridge: str) -> list[tuple[int, Optional[int], int, str]]:
        """(cookie, in_port or None, packets, actions) of every flow of ``bridge``."""
        out = self.ofctl("dump-flows", bridge, "--no-names")
        return [parsed for line in out.splitlines() if (parsed := parse_flow_stats(line)) is not None]

    def flow_count(self, bridge: str) -> int:
        out = self.ofctl("dump-flows", bridge, "--no-stats")
        return sum(1 for line in out.splitlines() if "actions=" in line)

    def lacp(self, port: str) -> dict:
        """OVS's LACP state of bond ``port`` (``lacp/show``, ``parse_lacp``)."""
        return parse_lacp(self.appctl("lacp/show", port))

    def lacp_stats(self, port: str) -> dict[str, dict[str, int]]:
        """Per member of bond ``port``: OVS's LACP counters (``lacp/show-stats``:
        "TX PDUs" -> tx_pdus, "RX PDUs" -> rx_pdus, ...)."""
        out: dict[str, dict[str, int]] = {}
        member = None
        for line in self.appctl("lacp/show-stats", port).splitlines():
            line = line.strip()
            if line.startswith(("member:", "slave:")):
                member = out.setdefault(line.split(":", 1)[1].strip().rstrip(":"), {})
            elif member is not None and ":" in line:
                key, value = line.rsplit(":", 1)
                if value.strip().isdigit():
                    member[key.strip().lower().replace(" ", "_")] = int(value)
        return out

    def port_names(self, bridge: str) -> dict[str, str]:
        """OpenFlow port number (as text) -> port name, for one bridge."""
        names = {}
        for line in self.ofctl("show", bridge).splitlines():
            line = line.strip()
            if "(" in line and "): addr:" in line:
                number, rest = line.split("(", 1)
                names[number.strip()] = rest.split(")", 1)[0]
        return names

    def port_stats(self, bridge: str) -> dict[str, dict[str, int]]:
        """Live per-port counters from the datapath (the database's statistics
        column lags by seconds), keyed by port name, from the switch's view:
        rx = into the bridge, tx = out of it."""
        names = self.port_names(bridge)
        stats: dict[str, dict[str, int]] = {}
        current = None
        for line in self.ofctl("dump-ports", bridge).splitlines():
            m = _PORT_LINE.match(line)
            if m:
                current = names.get(m.group(1).strip(), m.group(1).strip())
                stats[current] = {}
                line = line[m.end() :]
            direction = "rx" if " rx " in f" {line} " else "tx" if " tx " in f" {line} " else None
            if current is None or direction is None:
                continue
            for key, value in _COUNTER.findall(line):
                if value.isdigit():
                    stats[current][f"{direction}_{key}"] = int(value)
        return stats


_ORIG = re.compile(r"^(\w+),orig=\(([^)]*)\)")


def parse_lacp(text: str) -> dict:
    """``lacp/show PORT`` -> {"status": "active negotiated", "members": {name:
    {"status": current|expired|defaulted, "attached": bool, "may_enable":
    bool, "actor_state": [...], "partner_state": [...]}}}. A member is in
    the bundle (collecting and distributing) when ``may_enable``: attached
    and its partner in sync."""
    out: dict = {"status": None, "members": {}}
    member = None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("status:") and member is None:
            out["status"] = line.split(":", 1)[1].strip()
        elif line.startswith("member:") or line.startswith("slave:"):
            name, state = line.split(":", 1)[1].rsplit(":", 1)
            words = state.split()
            member = out["members"].setdefault(
                name.strip(),
                {"status": words[0], "attached": "attached" in words, "may_enable": False},
            )
        elif member is not None and line.startswith("may_enable:"):
            member["may_enable"] = line.split(":", 1)[1].strip() == "true"
        elif member is not None and line.startswith(("actor state:", "partner state:")):
            key = "actor_state" if line.startswith("actor") else "partner_state"
            member[key] = line.split(":", 1)[1].split()
    return out


def parse_mdb(text: str) -> list[dict]:
    """``mdb/show`` -> [{port, vlan, group, age}], by the header's column
    names: OVS 3.1 prints "port VLAN GROUP Age", 3.5 adds a protocol column
    ("port VLAN protocol GROUP Age")."""
    lines = text.splitlines()
    if not lines:
        return []
    names = [n.lower() for n in lines[0].split()]
    rows = []
    for line in lines[1:]:
        fields = line.split()
        if len(fields) != len(names):
            continue
        row = dict(zip(names, fields))
        rows.append(
            {"port": row["port"], "vlan": int(row["vlan"]), "group": row["group"], "age": int(row["age"])}
        )
    return rows


_TIMEOUT = re.compile(r",timeout=(\d+)")


def parse_conntrack(text: str) -> list[list]:
    """Parse ``dpctl/dump-conntrack [-s]`` lines into [proto, src, dst, sport,
    dport, timeout] (timeout None without ``-s``)."""
    out = []
    for line in text.splitlines():
        m = _ORIG.match(line.strip())
        if not m or m.group(1) not in IP_PROTOCOLS:
            continue
        fields = dict(kv.split("=", 1) for kv in m.group(2).split(","))
        sport, dport = fields.get("sport"), fields.get("dport")
        timeout = _TIMEOUT.search(line)
        out.append(
            [
                IP_PROTOCOLS[m.group(1)],
                fields["src"],
                fields["dst"],
                int(sport) if sport else None,
                int(dport) if dport else None,
                int(timeout.group(1)) if timeout else None,
            ]
        )
    return out
