"""``vlab bench`` without a lab: its generated labs are valid, its statistics
are the ones it claims, and its figures come from the stored JSON alone."""

import json

import pytest

from experiments import bench, bench_labs
from vlab.lab.load import parse_lab


@pytest.mark.parametrize(
    "data",
    [
        bench_labs.scale_lab(1),
        bench_labs.scale_lab(16),
        bench_labs.operations_lab(),
        bench_labs.single_host_lab(),
        *[bench_labs.shaping_lab(r) for r in bench.SHAPING_MBPS],
    ],
    ids=lambda d: d["name"],
)
def test_generated_labs_pass_the_lab_checker(data):
    lab = parse_lab(data, f"{data['name']}.yaml")
    assert lab.vms


def test_scale_lab_has_eight_vms_per_host_in_one_subnet():
    lab = parse_lab(bench_labs.scale_lab(16))
    assert len(lab.esxi_hosts) == 16 and len(lab.vms) == 128
    assert len({vm.vnics[0].ip.network for vm in lab.vms}) == 1


def test_shaping_lab_sets_the_rate_through_link_scale():
    for rate in bench.SHAPING_MBPS:
        lab = parse_lab(bench_labs.shaping_lab(rate))
        assert lab.esxi_hosts[0].uplinks[0].speed * 1000 * lab.link_scale == pytest.approx(rate)


def test_percentile_is_nearest_rank():
    values = list(range(1, 21))  # 20 trials
    assert bench.percentile(values, 50) == 10
    assert bench.percentile(values, 95) == 19
    assert bench.percentile([7.0], 95) == 7.0


def test_longest_silence_ignores_arrivals_before_the_stun():
    times = [0.0, 0.001, 0.002, 0.130, 0.131, 0.140]
    assert bench.longest_silence(times, since=0.0015) == pytest.approx(0.128)
    assert bench.longest_silence([0.0], since=0.5) == float("inf")


def stored_result():
    return {
        "scale": [
            {
                "hosts": h,
                "bringup_s": h * 1.0,
                "reach_all_s": h * 1.5,
                "peak_memory_mb": 100.0 * h,
                "peak_rss_of_our_processes_mb": 150.0 * h,
            }
            for h in bench.SCALE_HOSTS
        ],
        "failover": {"failover_ms": [12.0, 14.0, None], "p95_ms": 14.0, "target_p95_ms": 100},
        "vmotion": {
            "per_move": [{"to_peer_blackout_ms": 10.0, "to_mover_blackout_ms": 20.0}],
            "target_ms": 50,
            "stun_s": 0.1,
        },
        "shaping": [{"configured_mbps": r, "ratio": 0.94} for r in bench.SHAPING_MBPS],
        "throughput": {
            "veth": {"mbps": 6000.0},
            "ovs_bridge": {"mbps": 700.0},
            "vlan": {"mbps": 93.0},
            "overlay": {"mbps": 88.0},
            "overlay_over_vlan": 0.946,
        },
        "controller_resync": {
            "bridges": 16,
            "flows_total": 1920,
            "target_s": 1.0,
            "flows_exact_every_time": True,
            "stream": {"pps": 1000},
            "trials": [
                {
                    "resync_from_start_s": 0.9 + k / 10,
                    "resync_from_kill_s": 1.2 + k / 10,
                    "first_switch_from_start_s": 0.7,
                    "listening_from_start_s": 0.5,
                    "lost": k,
                    "sent_in_window": 1700,
                }
                for k in range(3)
            ],
        },
        "beacon_detection": {"trials": 3, "detected_s": [3.2, 3.6, 3.9], "restored_s": [1.0, 1.1, 0.9]},
        "lbt_reaction": {"trials": 2, "moved_after_s": [31.2, None]},
    }


FIGURES = ("scale", "failover-vmotion", "throughput", "controller-resync", "teaming")


def test_figures_are_drawn_from_the_json_alone(tmp_path):
    result = json.loads(json.dumps(stored_result()))
    paths = bench.plot(result, tmp_path)
    assert sorted(p.name for p in paths) == sorted(f"{n}.{ext}" for n in FIGURES for ext in ("png", "pdf"))
    assert all(p.stat().st_size > 0 for p in paths)


def test_a_result_from_before_the_resync_bench_still_plots(tmp_path):
    result = stored_result()
    del result["controller_resync"], result["beacon_detection"], result["lbt_reaction"]
    names = {p.stem for p in bench.plot(result, tmp_path)}
    assert names == set(FIGURES) - {"controller-resync", "teaming"}


def test_udp_seqs_reads_sequence_numbers_and_capture_times(tmp_path):
    import struct

    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Dot1Q, Ether
    from scapy.packet import Raw
    from scapy.utils import wrpcap

    def frame(seq, t, dport=7201, tag=False):
        l2 = Ether() / Dot1Q(vlan=10) if tag else Ether()
        p = (
            l2
            / IP(src="10.0.0.1", dst="10.0.0.2")
            / UDP(dport=dport)
            / Raw(struct.pack("!Q", seq).ljust(64, b"\0"))
        )
        p.time = t
        return p

    frames = [
        frame(0, 100.0),
        frame(1, 100.001, tag=True),
        frame(2, 100.002, dport=9),
        frame(3, 100.003),
        frame(3, 100.004),
    ]
    wrpcap(str(tmp_path / "s.pcap"), frames)
    seqs = bench.udp_seqs(tmp_path / "s.pcap", 7201)
    assert sorted(seqs) == [0, 1, 3]  # other port skipped
    assert seqs[3] == pytest.approx(100.003, abs=1e-6)  # first copy's time
    assert bench.udp_seqs(tmp_path / "missing.pcap", 7201) == {}


def test_vms_on_two_hosts_picks_another_host():
    lab = parse_lab(bench_labs.scale_lab(4))
    a, b = bench._vms_on_two_hosts(lab)
    assert a.host != b.host
