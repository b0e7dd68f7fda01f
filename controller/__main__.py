"""Run the controller: ``python -m controller --lab FILE --state DIR [--port N]``.

os-ken 4.x has no ``osken-manager``; apps are started in-process with
``AppManager.run_apps`` (README, "Design notes"). The testbed runs this inside its
management namespace, so listening on every address exposes nothing outside.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys


def _exit_now(*_) -> None:
    logging.getLogger("vlab.controller").info("SIGTERM: exiting")
    logging.shutdown()
    os._exit(0)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m controller")
    parser.add_argument("--lab", required=True)
    parser.add_argument("--state", required=True, help="run state directory")
    parser.add_argument("--port", type=int, default=6653)
    args = parser.parse_args(argv)

    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    if os.environ.get("VLAB_DEBUG"):
        logging.getLogger("vlab").setLevel(logging.DEBUG)
    from os_ken import cfg
    from os_ken.base.app_manager import AppManager

    # isort: split
    # Only after app_manager: os-ken's controller module imported first is a
    # circular import (app_manager imports it back).
    import os_ken.controller.controller  # noqa: F401  (registers the ofp-* options)

    from .app import Settings

    Settings.lab_file, Settings.state_dir = args.lab, args.state
    cfg.CONF(args=["--ofp-tcp-listen-port", str(args.port)], project="os_ken")
    # SIGTERM from the testbed: exit now. Everything the controller writes is
    # replaced atomically, so there is nothing to finish; a normal interpreter
    # exit would wait for os-ken's and pyroute2's non-daemon threads.
    signal.signal(signal.SIGTERM, _exit_now)
    AppManager.run_apps(["controller.app"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
