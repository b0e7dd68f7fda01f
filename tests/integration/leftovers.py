"""What of ours exists on the machine right now (for cleanup assertions)."""
import json
import os
import subprocess
from pathlib import Path

from vlab import naming


def snapshot() -> dict:
    """Namespaces, root-namespace links, run dirs and marked processes."""
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    links = json.loads(subprocess.run(["ip", "-j", "link"], capture_output=True, text=True).stdout)
    procs = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                env = Path(f"/proc/{entry}/environ").read_bytes()
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            # zombies are reaped by their parent, not ours to count
            if f"{naming.RUN_ENV}=".encode() in env and ") Z " not in stat:
                procs.append(int(entry))
    root = Path(naming.RUN_ROOT)
    return {
        "netns": sorted(netns.split()),
        "links": sorted(l["ifname"] for l in links),
        "run_dirs": sorted(p.name for p in root.iterdir()) if root.is_dir() else [],
        "processes": sorted(procs),
    }


def new_since(before: dict, after: dict) -> dict:
    return {k: sorted(set(after[k]) - set(before[k])) for k in before
            if set(after[k]) - set(before[k])}
