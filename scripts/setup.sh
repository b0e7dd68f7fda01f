#!/usr/bin/env bash
# Install everything the testbed needs on Debian 12, idempotently:
#  - the Debian packages (apt-get update only when one is missing),
#  - a virtualenv in .venv/ built on the distro Python (Mininet comes from the
#    distro package, see README "Design notes"), with the pinned deps of setup.cfg.
# It starts no service: every lab starts and stops its own OVS instances.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  openvswitch-switch openvswitch-common mininet iperf3 tcpdump tshark
  ethtool iputils-ping iproute2 procps python3 python3-venv python3-dev make
  dnsmasq-base udhcpc        # a real DHCP server and client for guests (DHCP snooping)
  nftables conntrack         # stateful perimeter firewalls (kernel conntrack)
  nmap                       # port scans (micro-segmentation)
  stress-ng                  # the load generator of `vlab bench --flakes`
  clang libbpf-dev           # the tc program that writes ERSPAN copies' VLAN (vlab/bpf)
)

if [ "$(id -u)" -ne 0 ]; then
  echo "setup: must run as root (installs Debian packages, creates namespaces)" >&2
  exit 2
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # tshark asks whether non-root users may capture; answer once, non-interactively.
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The distro packages ship a system OVS service; the testbed never uses it and
# never stops one that is running (it may belong to someone else).

VENV=.venv
STAMP=$VENV/.installed
if [ ! -x $VENV/bin/python ] || [ setup.cfg -nt $STAMP ] || [ pyproject.toml -nt $STAMP ]; then
  echo "setup: building $VENV"
  /usr/bin/python3 -m venv $VENV
  # Mininet comes from the distro package (PyPI only has a 2020 dev release);
  # expose exactly that package to the venv, nothing else from dist-packages.
  mkdir -p $VENV/distro
  ln -sfn /usr/lib/python3/dist-packages/mininet $VENV/distro/mininet
  site=$($VENV/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  echo "$(pwd)/$VENV/distro" > "$site/distro-mininet.pth"
  $VENV/bin/pip install -q --upgrade "pip==24.3.1"
  $VENV/bin/pip install -q -e ".[test]"
  touch $STAMP
fi
