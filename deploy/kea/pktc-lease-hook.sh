#!/bin/sh
# ISC Kea run_script hook (libdhcp_run_script.so) for the pkt-eue-7 device
# map: Kea runs this script on each DHCPv4 lease event with the hook point
# as its only argument and the lease in environment variables; `pktc-kdc
# lease-hook` writes or removes the device's Redis hash, which
# `pktc-kdc mps-responder` answers the KDC from. See docs/operations.md,
# "Feeding the device map from Kea".
#
# Kea starts it with its lease variables only (no PATH): use absolute paths.
# Install: /usr/lib/pktc-kdc/kea-lease-hook.sh, mode 0755, owned by root.
PKTC_KDC=/usr/bin/pktc-kdc
PKTC_MPS_CONFIG=/etc/pktc-kdc/mps-responder.toml

exec "$PKTC_KDC" lease-hook --config "$PKTC_MPS_CONFIG" "$1"
