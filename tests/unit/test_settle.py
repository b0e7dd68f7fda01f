"""How a measurement knows its traffic is over and its captures complete:
tcpdump's counters and ``ss`` output, parsed (no root, no namespace)."""

from experiments.settle import is_marker, marker, open_connections
from vlab.operations import capture_stats

USR1 = "tcpdump: listening on eth0, link-type EN10MB (Ethernet), snapshot length 262144 bytes\n"


def test_capture_stats_reads_the_last_counters_tcpdump_printed():
    assert capture_stats(USR1) is None
    log = (
        USR1 + "tcpdump: 4 packets captured, 5 packets received by filter, "
        "0 packets dropped by kernel\n"
        "9 packets captured\n10 packets received by filter\n1 packet dropped by kernel\n"
    )
    assert capture_stats(log) == (9, 10, 1)


def test_capture_stats_reads_singular_counts():
    log = USR1 + "tcpdump: 1 packet captured, 1 packet received by filter, 0 packets dropped by kernel\n"
    assert capture_stats(log) == (1, 1, 0)


def test_only_connections_that_can_still_send_are_open():
    ss = (
        "ESTAB      0 0 10.2.2.20:80 10.2.2.10:40000\n"
        "TIME-WAIT  0 0 10.2.2.20:80 10.2.2.10:40002\n"
        "LISTEN     0 5 0.0.0.0:80 0.0.0.0:*\n"
        "LAST-ACK   0 1 10.2.2.20:80 10.2.2.10:40004\n"
    )
    assert [line.split()[0] for line in open_connections(ss)] == ["ESTAB", "LAST-ACK"]
    assert open_connections("TIME-WAIT 0 0 a:80 b:1\n\n") == []


def test_markers_are_unique_and_recognisable():
    a, b = marker("x"), marker("x")
    assert a != b and is_marker(b"\x00" * 42 + a.encode()) and not is_marker(b"GET / HTTP/1.1")
