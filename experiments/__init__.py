"""Experiments, one module each: ``run(params) -> result`` and ``plot(result, outdir)``.

``REGISTRY`` maps the experiment name used on the command line and under
``results/`` to its module; ``vlab run`` runs them in this order.
"""

from importlib import import_module

REGISTRY = {
    "two-hosts": "experiments.two_hosts",
    "vswitch-nuggets": "experiments.vswitch_nuggets",
    "reverse-teaming": "experiments.reverse_teaming",
    "vmk-egress": "experiments.vmk_egress",
    "nsx-packet-walk": "experiments.nsx_packet_walk",
    "vmsc-asymmetry": "experiments.vmsc_asymmetry",
    "microsegmentation": "experiments.microsegmentation",
    "erspan-capture": "experiments.erspan_capture",
    "port-mirroring": "experiments.port_mirroring",
    "port-security": "experiments.port_security",
    "teaming-policies": "experiments.teaming_policies",
    "lacp": "experiments.lacp",
    "traffic-shaping": "experiments.traffic_shaping",
}


class UnknownExperiment(LookupError):
    """A name on the command line that is not in REGISTRY."""


def get(name: str):
    if name not in REGISTRY:
        raise UnknownExperiment(f"unknown experiment {name!r}; known: {', '.join(REGISTRY)}")
    return import_module(REGISTRY[name])
