#!/bin/sh
# The README's two commands on any fresh Debian or Ubuntu machine, even a
# stock image without make:
#   sudo ./bootstrap.sh run     set up, then run every experiment (make run)
#   sudo ./bootstrap.sh test    set up, then run the whole test suite (make test)
# Set-up (scripts/setup.sh) installs what is missing, make included; then the
# Makefile target runs. PYTEST_ARGS is passed through to make test.
set -eu
cd "$(dirname "$0")"
case "${1:-}" in
  run|test) ;;
  *) echo "usage: sudo ./bootstrap.sh run|test" >&2; exit 2 ;;
esac
command -v bash >/dev/null 2>&1 || { echo "bootstrap: needs bash" >&2; exit 2; }
bash scripts/setup.sh
exec make "$1" ${PYTEST_ARGS:+PYTEST_ARGS="$PYTEST_ARGS"}
