#!/usr/bin/env bash
# PKINIT benchmark: KDC CPU time per PKINIT AS request (RSA modes), measured
# from /proc/PID/stat of the pktc-kdc process while a separate eue-sim
# process drives fresh, newly signed AS requests over loopback TCP, in the
# PacketCable form and in the RFC 4556 RSA form. The same run measures
# `openssl speed rsa2048` for the machine's per-signature cost.
# See docs/benchmarks.md.
#
# Usage: bash bench/pkinit.sh [extra eue-sim pkinit-load args, e.g. --json]
# Environment: SECONDS_LOAD (default 10), CONCURRENCY (default 8),
#              TRANSPORT (tcp|udp, default tcp), KDC_LOG (default warn),
#              SPEED_SECONDS (default 3; 0 skips openssl speed),
#              FORMS (default "packetcable rfc4556 rfc4556-dh rfc4556-ecdh"),
#              DH_KEY_REUSE_SECS (default 0: pkinit.dh_key_reuse_secs),
#              DEVICE_CACHE_ENTRIES (default: the KDC's; 0 measures the
#              device-certificate cache miss path on every request).
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_LOAD=${SECONDS_LOAD:-10}
CONCURRENCY=${CONCURRENCY:-8}
TRANSPORT=${TRANSPORT:-tcp}
KDC_LOG=${KDC_LOG:-warn}
SPEED_SECONDS=${SPEED_SECONDS:-3}
FORMS=${FORMS:-packetcable rfc4556 rfc4556-dh rfc4556-ecdh}
DH_KEY_REUSE_SECS=${DH_KEY_REUSE_SECS:-0}
DEVICE_CACHE_ENTRIES=${DEVICE_CACHE_ENTRIES:-}
MIT_RSA_MS=1.86
MIT_DH_MS=4.11
TARGET_RSA_MS=0.35
TARGET_DH_MS=0.8

# shellcheck source=bench/lib.sh
. bench/lib.sh
bench_build
bench_realm
sed -i "s/^dh_key_reuse_secs = .*/dh_key_reuse_secs = $DH_KEY_REUSE_SECS/" "$work/realm/config.toml"
if [ -n "$DEVICE_CACHE_ENTRIES" ]; then
  sed -i "s/^device_cache_entries = .*/device_cache_entries = $DEVICE_CACHE_ENTRIES/" "$work/realm/config.toml"
fi

if [ "$SPEED_SECONDS" != 0 ]; then
  # Before the KDC starts, so that nothing else competes for the CPU.
  echo "== openssl speed -seconds $SPEED_SECONDS rsa2048 ($(openssl version))" >&2
  speed=$(openssl speed -seconds "$SPEED_SECONDS" rsa2048 2>/dev/null | grep -E '^rsa +2048' | tail -1)
  # "rsa 2048 bits 0.000712s 0.000021s 1404.2 47619.0" (sign s, verify s, sign/s, verify/s)
  sign_s=$(echo "$speed" | awk '{print $4}' | tr -d s)
  signs=$(echo "$speed" | awk '{print $6}')
  verifies=$(echo "$speed" | awk '{print $7}')
  sign_ms=$(awk -v s="$sign_s" 'BEGIN{printf "%.3f", s*1000}')
  echo "openssl speed rsa2048: $signs sign/s ($sign_ms ms per signature, one core), $verifies verify/s"
fi

bench_start
# Ready when one device is provisioned end to end.
bench_wait_ready "$SIM_BIN" provision --realm-dir "$work/realm" --timeout-ms 500

for form in $FORMS; do
  echo "== pktc-kdc pid $kdc_pid (RUST_LOG=$KDC_LOG, dh_key_reuse_secs $DH_KEY_REUSE_SECS, device_cache_entries ${DEVICE_CACHE_ENTRIES:-default}); $form form, ${SECONDS_LOAD}s, concurrency $CONCURRENCY, $TRANSPORT" >&2
  "$SIM_BIN" pkinit-load --realm-dir "$work/realm" --kdc-pid "$kdc_pid" --form "$form" \
    --seconds "$SECONDS_LOAD" --concurrency "$CONCURRENCY" --transport "$TRANSPORT" "$@"
done

echo "reference: MIT krb5kdc 1.20: ${MIT_RSA_MS} ms KDC CPU per RSA-mode PKINIT request, ${MIT_DH_MS} ms per DH one;" >&2
echo "           targets: RSA mode <= ${TARGET_RSA_MS} ms, DH <= ${TARGET_DH_MS} ms" >&2
