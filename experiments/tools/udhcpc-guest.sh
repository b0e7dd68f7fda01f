#!/bin/sh
# udhcpc hook for a guest: put the leased address on the guest's interface
# and nothing else. Guests share the host's filesystem, so the stock script
# (which rewrites /etc/resolv.conf) must not run in them.
case "$1" in
  deconfig) ip -4 addr flush dev "$interface" ;;
  bound|renew) ip -4 addr flush dev "$interface" && ip addr add "$ip/$mask" dev "$interface" ;;
esac
