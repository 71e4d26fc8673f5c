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

echo "== building (release)" >&2
cargo build --release --quiet -p kdc -p eue-sim
target_dir=$(cargo metadata --format-version 1 --no-deps 2>/dev/null |
  sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
target_dir=${target_dir:-target}
KDC_BIN="$target_dir/release/pktc-kdc"
SIM_BIN="$target_dir/release/eue-sim"

work=$(mktemp -d "${TMPDIR:-/tmp}/pktc-bench.XXXXXX")
kdc_pid=""
cleanup() {
  if [ -n "$kdc_pid" ] && kill -0 "$kdc_pid" 2>/dev/null; then
    kill "$kdc_pid" 2>/dev/null || true
    wait "$kdc_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

echo "== dev realm in $work" >&2
"$KDC_BIN" dev --dir "$work/realm" --init-only --port 0 >/dev/null 2>&1

# The audit log writes one line per request at info level; formatting and
# writing it would dominate the KDC's CPU time, so the benchmark runs at warn.
RUST_LOG=$KDC_LOG "$KDC_BIN" serve --config "$work/realm/config.toml" \
  >"$work/kdc.log" 2>&1 &
kdc_pid=$!

# Wait (bounded) until the KDC answers: a TGS load of a fraction of a second.
ready=""
for _ in $(seq 1 50); do
  if ! kill -0 "$kdc_pid" 2>/dev/null; then
    echo "pktc-kdc exited early:" >&2
    cat "$work/kdc.log" >&2
    exit 1
  fi
  if "$SIM_BIN" tgs-load --realm-dir "$work/realm" --seconds 0.05 --warmup-seconds 0 \
    --max-requests 5 --concurrency 1 --timeout-ms 200 --json >/dev/null 2>&1; then
    ready=1
    break
  fi
  sleep 0.1
done
if [ -z "$ready" ]; then
  echo "pktc-kdc did not answer within 5 s" >&2
  cat "$work/kdc.log" >&2
  exit 1
fi

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
