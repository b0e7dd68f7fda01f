"""vlab: an emulation testbed for data-centre virtual networking.

This package holds what the controller, the bring-up and the experiments
share: the lab file (``vlab.lab``), what is derived from it (``bindings``:
port numbers and placement; ``control``: the files the testbed and the
controller talk through; ``vmkernel``, ``perimeter``), drivers for OVS and
for a run's lifecycle, operations on a running lab (``operations``), the
ESXi-flavoured shell (``shell``), ``trace``, and the ``vlab`` command
(``cli``). Which module may import which is declared in
tests/unit/test_layers.py (README, "Architecture").
"""
