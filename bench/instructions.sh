#!/usr/bin/env bash
# Instructions the KDC executes per request, counted by valgrind
# (callgrind): the KDC runs under callgrind twice, answering N1 and then N2
# serial requests from eue-sim, and the difference of the two totals
# divided by N2 - N1 is the per-request count (start-up cancels out).
# Unlike CPU time on a shared machine, the count barely moves between runs,
# so it shows changes of a percent or two. See docs/benchmarks.md.
#
# Usage: bash bench/instructions.sh
# Environment: EXCHANGE: tgs (default), or a PKINIT form of `eue-sim
#              pkinit-load` (packetcable, rfc4556, rfc4556-dh, rfc4556-ecdh);
#              N1, N2 (default 1000 and 3000 for TGS, 100 and 300 for PKINIT);
#              KEEP_PROFILES=DIR (copy the callgrind outputs there, for
#              callgrind_annotate).
# Needs valgrind (apt-get install valgrind). Takes one to three minutes.
set -euo pipefail
cd "$(dirname "$0")/.."

EXCHANGE=${EXCHANGE:-tgs}
if [ "$EXCHANGE" = tgs ]; then
  N1=${N1:-1000}
  N2=${N2:-3000}
  load=(tgs-load)
  answered="TGS-REP ok"
else
  N1=${N1:-100}
  N2=${N2:-300}
  load=(pkinit-load --form "$EXCHANGE" --transport tcp)
  answered="AS-REP ok"
fi
KDC_LOG=warn
command -v valgrind >/dev/null || { echo "valgrind not found: apt-get install valgrind" >&2; exit 1; }

# shellcheck source=bench/lib.sh
. bench/lib.sh
bench_build

# Total instructions of a KDC that answered $1 requests (plus the one
# readiness request). Runs in a subshell ($(...)): the realm's cleanup trap
# fires when it ends.
instructions_after() {
  local n=$1
  bench_realm
  # Under valgrind the KDC runs ~50 times slower: no request may count as
  # stale, and the provisioning-server lookup (PKINIT) gets time to answer.
  sed -i -e 's/^max_queue_delay_ms = .*/max_queue_delay_ms = 60000/' \
    -e 's/^timeout_ms = 1000$/timeout_ms = 60000/' "$work/realm/config.toml"
  if [ -f "$work/realm/mps-responder.toml" ]; then
    RUST_LOG=$KDC_LOG "$KDC_BIN" mps-responder --config "$work/realm/mps-responder.toml" \
      >"$work/mps.log" 2>&1 &
    bench_pids+=($!)
  fi
  RUST_LOG=$KDC_LOG valgrind --tool=callgrind --callgrind-out-file="$work/cg.out" \
    "$KDC_BIN" serve --config "$work/realm/config.toml" >"$work/kdc.log" 2>&1 &
  kdc_pid=$!
  bench_pids+=("$kdc_pid")
  local ready=0
  for _ in $(seq 1 300); do
    if "$SIM_BIN" tgs-load --realm-dir "$work/realm" --seconds 0.5 --warmup-seconds 0 \
      --max-requests 1 --concurrency 1 --timeout-ms 2000 --json >/dev/null 2>&1; then
      ready=1
      break
    fi
    sleep 0.2
  done
  [ "$ready" = 1 ] || { echo "the KDC under valgrind did not answer within 60 s" >&2; cat "$work/kdc.log" >&2; exit 1; }
  local out
  out=$("$SIM_BIN" "${load[@]}" --realm-dir "$work/realm" --seconds 600 --warmup-seconds 0 \
    --max-requests "$n" --concurrency 1 --timeout-ms 10000)
  if ! grep -q "$answered $n " <<<"$out"; then
    echo "not every request was answered:" >&2
    echo "$out" >&2
    exit 1
  fi
  kill -TERM "$kdc_pid"
  wait "$kdc_pid" || true
  if [ -n "${KEEP_PROFILES:-}" ]; then
    mkdir -p "$KEEP_PROFILES"
    cp "$work/cg.out" "$KEEP_PROFILES/callgrind.$n.out"
  fi
  awk '/^(summary|totals):/ { print $2; exit }' "$work/cg.out"
}

echo "== callgrind: $N1 and $N2 serial $EXCHANGE requests" >&2
ir1=$(instructions_after "$N1")
ir2=$(instructions_after "$N2")
echo "$EXCHANGE: instructions per request: $(( (ir2 - ir1) / (N2 - N1) )) (totals $ir1 for $N1, $ir2 for $N2)"
