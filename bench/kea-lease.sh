#!/usr/bin/env bash
# DHCP lease change -> KDC accepts the device: a real kea-dhcp4 on loopback
# with the shipped run_script hook (`pktc-kdc lease-hook`) feeding the
# Redis device map of the dev realm's `pktc-kdc mps-responder`, a scripted
# DHCP client, and MIT kinit PKINIT against `pktc-kdc serve` with the dev
# realm's default MPS caches (answers 300 s, "unknown MAC" 30 s, a cached
# refusal re-checked after mps.recheck_interval_secs, 5 s). Prints the DORA
# time, ACK -> hash written, RELEASE -> hash removed, and ACK -> first
# accepted kinit (retried every 100 ms) for a device unknown to the KDC
# before and for one it has just refused. See docs/benchmarks.md.
#
# Usage: bash bench/kea-lease.sh
# Environment: KEA_ROUNDS (default 20) lease/release rounds for the hook timings.
# Needs what `bash .ci/run` installs (kea-dhcp4-server, redis-server,
# krb5-user, krb5-pkinit). Runs after a release build of the test; its
# longest waits are the two just-refused devices, about 5 s each (the
# re-check interval; before the re-check, the 30 s negative cache).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== building (release)" >&2
cargo test --release --locked --quiet -p pktc-kdc --test kea_lease --no-run
echo "== measuring (KEA_ROUNDS=${KEA_ROUNDS:-20})" >&2
KEA_ROUNDS=${KEA_ROUNDS:-20} cargo test --release --locked --quiet -p pktc-kdc --test kea_lease -- \
  --ignored --nocapture --test-threads 1 measure_lease_to_acceptance
