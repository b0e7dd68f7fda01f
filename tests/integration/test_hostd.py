"""hostd's view of a guest: read over a netlink socket created in the guest's
network namespace, from the thread that uses it (the controller reads once
at start in its main thread, then from its watch thread)."""

import subprocess
import threading

from controller.hostd import GuestObserver, WatchedNic


def _guest():
    """A process alone in a new network namespace (a guest without Mininet)."""
    return subprocess.Popen(["unshare", "--net", "sleep", "60"])


def _in_guest(pid: int, cmd: str) -> None:
    subprocess.run(["nsenter", "-t", str(pid), "-n", "sh", "-c", cmd], check=True)


def _namespace_ready(pid: int) -> None:
    """unshare has switched namespaces once its net ns differs from ours."""
    import os

    from vlab.waiting import wait_for

    own = os.stat("/proc/self/ns/net").st_ino
    wait_for(
        lambda: os.stat(f"/proc/{pid}/ns/net").st_ino != own, 5, "unshare entering its network namespace"
    )


def test_observer_reads_the_guest_namespace_from_any_thread():
    guest = _guest()
    observer = GuestObserver([WatchedNic("g-eth0", guest.pid, "lo")])
    try:
        _namespace_ready(guest.pid)
        _in_guest(guest.pid, "ip link set lo up && ip addr add 10.99.0.1/32 dev lo")
        first = observer.snapshot()["g-eth0"]
        assert "10.99.0.1" in first.ipv4 and not first.promiscuous

        _in_guest(guest.pid, "ip link set lo promisc on")
        seen = {}
        reader = threading.Thread(target=lambda: seen.update(observer.snapshot()))
        reader.start()
        reader.join(10)
        assert seen["g-eth0"].promiscuous, "a second thread reads the guest's current state"
        # Our own namespace was left as it was: its lo has no such address.
        own = subprocess.run(
            ["ip", "-4", "addr", "show", "dev", "lo"], capture_output=True, text=True, check=True
        ).stdout
        assert "10.99.0.1" not in own
    finally:
        observer.close()
        guest.kill()
        guest.wait()
