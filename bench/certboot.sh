#!/usr/bin/env bash
# Certificate-bootstrapping benchmark: full mutual-TLS handshakes (RSA-2048
# server key, RSA key exchange with TLS_RSA_WITH_AES_128_CBC_SHA, a device
# certificate verified against the trust store with its CRLs) plus one
# profile fetch each, on a new connection every time, driven by a separate
# eue-sim process. Reports fetches/s and the server's CPU per handshake from
# /proc/PID/stat, with `openssl speed rsa2048` from the same run.
# See docs/benchmarks.md.
#
# Usage: bash bench/certboot.sh [extra eue-sim bootstrap-load args, e.g. --json]
# Environment: SECONDS_LOAD (default 10), CONCURRENCY (default 4),
#              KDC_LOG (default warn), SPEED_SECONDS (default 3; 0 skips).
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_LOAD=${SECONDS_LOAD:-10}
CONCURRENCY=${CONCURRENCY:-4}
KDC_LOG=${KDC_LOG:-warn}
SPEED_SECONDS=${SPEED_SECONDS:-3}

# shellcheck source=bench/lib.sh
. bench/lib.sh
bench_build
bench_realm
if [ "$SPEED_SECONDS" != 0 ]; then
  bench_openssl_speed "$SPEED_SECONDS"
fi
bench_start
bench_wait_ready "$SIM_BIN" bootstrap --realm-dir "$work/realm" --timeout-ms 500

for profile in pktc modern; do
  echo "== pktc-kdc pid $kdc_pid (RUST_LOG=$KDC_LOG); $profile profile, ${SECONDS_LOAD}s, concurrency $CONCURRENCY" >&2
  "$SIM_BIN" bootstrap-load --realm-dir "$work/realm" --kdc-pid "$kdc_pid" --profile "$profile" \
    --seconds "$SECONDS_LOAD" --concurrency "$CONCURRENCY" "$@"
done
