"""Bring a lab up, print READY <run id>, hold it until a signal arrives.

Driven by the cleanup tests as a separate process, so they can interrupt or
kill a real testbed run at a chosen moment.
"""

import signal
import sys

from experiments.common import lab_session

with lab_session(sys.argv[1]) as net:
    print(f"READY {net.run.id}", flush=True)
    signal.pause()
