#!/usr/bin/env bash
# Reboot-storm benchmark: the KDC under an open-loop PKINIT storm
# (`eue-sim storm`: Poisson arrivals, each exchange from its own
# 127.0.0.0/8 address, retried on the devices' 3, 6, 12, 20, 20 s ladder).
#
# First finds the capacity C of each transport: the highest offered rate
# whose answered p99 stays under 100 ms (doubling from SEARCH_START, then
# bisecting; bounded number of short probes). Then runs LEVELS × C over
# UDP and TCP and prints one table. `openssl speed rsa2048` on the KDC's
# core comes from the same run. See docs/benchmarks.md.
#
# The dev realm's provisioning-server stand-in binds every device to
# 127.0.0.1, and the storm's sources are other loopback addresses: the
# address check is turned off for the run (`[mps] require_address_match =
# false`, no addresses in the stand-in's table). The generator shares the
# machine with the KDC (pinned apart, see lib.sh).
#
# Usage: bash bench/storm.sh
# Environment: SECONDS_STORM (default 10) per level, SEARCH_SECONDS
#              (default 4) per capacity probe, SEARCH_START (default 250/s),
#              LEVELS (default "0.5 1 2 3"), TRANSPORTS (default "udp tcp"),
#              LADDER (default 3,6,12,20,20), CAPACITY (skip the search:
#              one rate for every transport; CAPACITY_UDP / CAPACITY_TCP
#              per transport), KDC_LOG (default warn),
#              PIN (default 1), KDC_BIN / SIM_BIN (prebuilt binaries: e.g.
#              an older pktc-kdc with this branch's eue-sim; no build then),
#              TCP_BACKLOG ([listen] tcp_backlog; default: the KDC's),
#              JSON_OUT (a file to append each level's JSON report to).
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_STORM=${SECONDS_STORM:-10}
SEARCH_SECONDS=${SEARCH_SECONDS:-4}
SEARCH_START=${SEARCH_START:-250}
LEVELS=${LEVELS:-0.5 1 2 3}
TRANSPORTS=${TRANSPORTS:-udp tcp}
LADDER=${LADDER:-3,6,12,20,20}
KDC_LOG=${KDC_LOG:-warn}
P99_LIMIT_MS=100

# shellcheck source=bench/lib.sh
. bench/lib.sh
if [ -n "${KDC_BIN:-}" ] && [ -n "${SIM_BIN:-}" ]; then
  echo "== prebuilt: $KDC_BIN, $SIM_BIN" >&2
else
  bench_build
fi
bench_pinning
bench_realm
# Every storm exchange has its own source address: address check off.
sed -i 's/^require_address_match = true/require_address_match = false/' "$work/realm/config.toml"
jq -r '.devices[] | "[[device]]\nmac = \"\(.mac)\"\nfqdn = \"\(.fqdn)\"\naddresses = []\n"' \
  "$work/realm/dev-realm.json" >"$work/realm/mps-table.toml"
echo "== address check off: require_address_match = false, stand-in table without addresses" >&2
if [ -n "${TCP_BACKLOG:-}" ]; then
  sed -i "s/^tcp_backlog = .*/tcp_backlog = $TCP_BACKLOG/" "$work/realm/config.toml"
  echo "== tcp_backlog = $TCP_BACKLOG (net.ipv4.tcp_abort_on_overflow = $(sysctl -n net.ipv4.tcp_abort_on_overflow 2>/dev/null || echo ?))" >&2
fi
# One socket per exchange in flight (the KDC inherits the limit too). Over
# UDP an unanswered exchange holds its socket for the whole window: with a
# hard limit below rate × SECONDS_STORM, eue-sim warns, reports not_sent and
# the row says "generator behind: yes" (shorten SECONDS_STORM then).
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

bench_openssl_speed 2 1
bench_start
bench_wait_ready "$SIM_BIN" provision --realm-dir "$work/realm" --timeout-ms 500

# storm TRANSPORT RATE SECONDS: one run's JSON report.
storm() {
  "${LOAD_PIN[@]}" "$SIM_BIN" storm --realm-dir "$work/realm" --kdc-pid "$kdc_pid" \
    --transport "$1" --rate "$2" --seconds "$3" --ladder "$LADDER" --json
}

# ok JSON: answered p99 under the limit and (nearly) everything answered.
good() {
  echo "$1" | jq -e --argjson lim "$P99_LIMIT_MS" \
    '(.latency_ms.p99 // 1e9) < $lim and .goodput_per_s >= 0.97 * .offered_per_s' >/dev/null
}

# capacity TRANSPORT: prints the highest good rate found.
capacity() {
  local t=$1 rate=$SEARCH_START lo=0 hi=0 out i
  for i in 1 2 3 4 5 6; do
    out=$(storm "$t" "$rate" "$SEARCH_SECONDS")
    echo "   probe $t $rate/s: p99 $(echo "$out" | jq .latency_ms.p99) ms, goodput $(echo "$out" | jq -r '.goodput_per_s | floor')/s" >&2
    if good "$out"; then lo=$rate; rate=$((rate * 2)); else hi=$rate; break; fi
  done
  [ "$hi" = 0 ] && { echo "$lo"; return; }
  for i in 1 2 3; do
    rate=$(((lo + hi) / 2))
    [ $((hi - lo)) -le $((lo / 20 + 1)) ] && break
    out=$(storm "$t" "$rate" "$SEARCH_SECONDS")
    echo "   probe $t $rate/s: p99 $(echo "$out" | jq .latency_ms.p99) ms, goodput $(echo "$out" | jq -r '.goodput_per_s | floor')/s" >&2
    if good "$out"; then lo=$rate; else hi=$rate; fi
  done
  echo "$lo"
}

rows=()
for t in $TRANSPORTS; do
  cvar="CAPACITY_$(echo "$t" | tr a-z A-Z)"
  if [ -n "${!cvar:-${CAPACITY:-}}" ]; then
    c=${!cvar:-$CAPACITY}
  else
    echo "== capacity search ($t, ${SEARCH_SECONDS}s probes, p99 < ${P99_LIMIT_MS} ms)" >&2
    c=$(capacity "$t")
  fi
  [ "$c" -gt 0 ] || { echo "no rate met p99 < ${P99_LIMIT_MS} ms over $t" >&2; exit 1; }
  echo "== $t: C = $c/s" >&2
  for level in $LEVELS; do
    rate=$(awk -v c="$c" -v l="$level" 'BEGIN{printf "%d", c*l}')
    echo "== $t ${level}×C = $rate/s for ${SECONDS_STORM}s" >&2
    out=$(storm "$t" "$rate" "$SECONDS_STORM")
    echo "$out" >>"$work/storm.jsonl"
    [ -z "${JSON_OUT:-}" ] || echo "$out" >>"$JSON_OUT"
    rows+=("$(echo "$out" | jq -r --arg l "$level" --argjson c "$c" '
      def r: if . == null then "-" else (. * 10 | round / 10 | tostring) end;
      def ms: if . == null then "-" elif . >= 1000 then ((. / 100 | round / 10 | tostring) + " s") else ((. | round | tostring) + " ms") end;
      [ .transport, ($l + "×"), (.offered_per_s | floor | tostring),
        ((.goodput_per_s | floor | tostring) + " (" + (.goodput_second_half_per_s | floor | tostring) + ")"),
        ((.goodput_per_s / $c * 100 | round | tostring) + " %"),
        (.latency_ms.p50 | ms), (.latency_ms.p99 | ms),
        ((([.answered_after_sends | to_entries[] | select(.key != "1") | .value] | add // 0)
          / ([.answered_ok, 1] | max) * 100 | round | tostring) + " %"),
        (.try_timeouts_per_s | r), (.gave_up_per_s | r),
        ((.krb_errors["29"] // 0) / .window_s | r),
        (if .transport == "UDP" then (.udp_drops // "-" | tostring) else (.tcp_slow_connects | tostring) end),
        (.kdc_cpu_after_window_ms | r),
        ((.kdc_rss_kb.start / 1024 | round | tostring) + "→" + (.kdc_rss_kb.max / 1024 | round | tostring)),
        (if .behind_schedule then "yes" else "no" end)
      ] | "| " + join(" | ") + " |"')")
  done
  rows+=("| $t C = $c/s | | | | | | | | | | | | | | |")
done

echo "== summary (pinned: ${KDC_PIN[*]:-no}; generator on the other CPUs of the same machine)"
echo "| transport | load | offered/s | goodput/s (2nd half) | of C | p50 | p99 | answered on a retry | timeouts/s | given up/s | KRB-ERROR 29/s | UDP drops / TCP slow connects | KDC CPU after (ms) | RSS MB start→max | generator behind |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
for r in "${rows[@]}"; do echo "$r"; done
echo "openssl speed rsa2048 on the KDC's core: $SIGN_MS_BEST ms per signature"
