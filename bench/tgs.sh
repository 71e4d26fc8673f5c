#!/usr/bin/env bash
# TGS benchmark: KDC CPU time per TGS request, measured from /proc/PID/stat
# of the pktc-kdc process while a separate eue-sim process drives fresh TGS
# requests over loopback UDP. See docs/benchmarks.md.
#
# Usage: bash bench/tgs.sh [extra eue-sim tgs-load args, e.g. --seconds 5 --json]
# Environment: SECONDS_LOAD (default 10), CONCURRENCY (default 32),
#              CLIENT_THREADS (default 1), KDC_LOG (default warn).
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_LOAD=${SECONDS_LOAD:-10}
CONCURRENCY=${CONCURRENCY:-32}
CLIENT_THREADS=${CLIENT_THREADS:-1}
KDC_LOG=${KDC_LOG:-warn}
MIT_REFERENCE_MS=0.154
TARGET_MS=0.025

# shellcheck source=bench/lib.sh
. bench/lib.sh
bench_build
bench_realm
bench_start
# Ready when a short TGS load gets answers.
bench_wait_ready "$SIM_BIN" tgs-load --realm-dir "$work/realm" --seconds 0.05 --warmup-seconds 0 \
  --max-requests 5 --concurrency 1 --timeout-ms 200 --json

echo "== pktc-kdc pid $kdc_pid (RUST_LOG=$KDC_LOG); load: ${SECONDS_LOAD}s, concurrency $CONCURRENCY" >&2
"$SIM_BIN" tgs-load --realm-dir "$work/realm" --kdc-pid "$kdc_pid" \
  --seconds "$SECONDS_LOAD" --concurrency "$CONCURRENCY" --threads "$CLIENT_THREADS" "$@"

if command -v krb5kdc >/dev/null 2>&1; then
  echo "== MIT krb5kdc is installed ($(command -v krb5kdc)), but this script does not" >&2
  echo "   set up an MIT realm; the reference figure below is from the issue." >&2
else
  echo "== MIT krb5kdc not installed; reference figure from the issue is used." >&2
fi
echo "reference: MIT krb5kdc 1.20: ${MIT_REFERENCE_MS} ms KDC CPU per TGS request; target: <= ${TARGET_MS} ms" >&2
