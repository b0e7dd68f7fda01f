"""Bring-up: a lab as a running Mininet network, one module per kind of
node it builds (see ``network``)."""
