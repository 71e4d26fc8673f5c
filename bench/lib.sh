# Shared by the benchmark scripts (sourced): release build, a dev realm in a
# temporary directory, its provisioning-server stand-in and the KDC, a
# bounded readiness wait, and cleanup on exit.

bench_build() {
  echo "== building (release)" >&2
  # BENCH_FEATURES, e.g. pktc-kdc/vendored-openssl (with its own CARGO_TARGET_DIR).
  cargo build --release --quiet -p pktc-kdc -p eue-sim ${BENCH_FEATURES:+--features "$BENCH_FEATURES"}
  local target_dir
  target_dir=$(cargo metadata --format-version 1 --no-deps 2>/dev/null |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
  target_dir=${target_dir:-target}
  KDC_BIN="$target_dir/release/pktc-kdc"
  SIM_BIN="$target_dir/release/eue-sim"
}

# CPU pinning (PIN=1, the default on machines with at least 2 CPUs): the KDC
# on CPU 0, the load generator on the others, so the client's work never
# runs on the KDC's core (as in production, where devices are elsewhere)
# and the KDC's CPU per request is a per-core figure. PIN=0 lets the
# scheduler place both.
KDC_PIN=()
LOAD_PIN=()
bench_pinning() {
  local n
  n=$(nproc)
  KDC_PIN=()
  LOAD_PIN=()
  if [ "${PIN:-1}" = 1 ] && [ "$n" -ge 2 ] && command -v taskset >/dev/null 2>&1; then
    KDC_PIN=(taskset -c 0)
    LOAD_PIN=(taskset -c "1-$((n - 1))")
    echo "== pinned: pktc-kdc on CPU 0, load generator on CPUs 1-$((n - 1)) (PIN=0 to unpin)" >&2
  fi
}

bench_pids=()
bench_cleanup() {
  for pid in "${bench_pids[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
  done
  rm -rf "$work"
}

# Creates the dev realm in $work/realm.
bench_realm() {
  work=$(mktemp -d "${TMPDIR:-/tmp}/pktc-bench.XXXXXX")
  trap bench_cleanup EXIT INT TERM
  echo "== dev realm in $work" >&2
  "$KDC_BIN" dev --dir "$work/realm" --init-only --port 0 >/dev/null 2>&1
}

# Starts the realm's provisioning-server stand-in (pkt-eue-7) and the KDC.
# The audit log writes one line per request at info level; formatting and
# writing it would dominate the KDC's CPU time, so benchmarks run at warn.
bench_start() {
  if [ -f "$work/realm/mps-responder.toml" ]; then
    RUST_LOG=$KDC_LOG "$KDC_BIN" mps-responder --config "$work/realm/mps-responder.toml" \
      >"$work/mps.log" 2>&1 &
    bench_pids+=($!)
  fi
  RUST_LOG=$KDC_LOG "${KDC_PIN[@]}" "$KDC_BIN" serve --config "$work/realm/config.toml" >"$work/kdc.log" 2>&1 &
  kdc_pid=$!
  bench_pids+=("$kdc_pid")
}

# Waits (5 s at most) until "$@" succeeds against the KDC.
bench_wait_ready() {
  for _ in $(seq 1 50); do
    if ! kill -0 "$kdc_pid" 2>/dev/null; then
      echo "pktc-kdc exited early:" >&2
      cat "$work/kdc.log" >&2
      exit 1
    fi
    if "$@" >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.1
  done
  echo "pktc-kdc did not answer within 5 s:" >&2
  "$@" >&2 || true
  cat "$work/kdc.log" >&2
  exit 1
}

# `openssl speed rsa2048` on the KDC's core, $2 runs (default 1) of $1
# seconds; prints each run's per-signature cost and sets SIGN_MS_BEST and
# SIGN_MS_MEDIAN. Run before the server starts, so nothing else competes
# for the CPU. On a shared (virtual) machine one run can differ from the
# next by 20 %, so the best run is the machine's own speed.
bench_openssl_speed() {
  local seconds=$1 runs=${2:-1} speed sign_s signs verifies sign_ms all=()
  echo "== openssl speed -seconds $seconds rsa2048 ($(openssl version)), $runs run(s)" >&2
  for _ in $(seq 1 "$runs"); do
    speed=$("${KDC_PIN[@]}" openssl speed -seconds "$seconds" rsa2048 2>/dev/null | grep -E '^rsa +2048' | tail -1)
    # "rsa 2048 bits 0.000712s 0.000021s 1404.2 47619.0" (sign s, verify s, sign/s, verify/s)
    sign_s=$(echo "$speed" | awk '{print $4}' | tr -d s)
    signs=$(echo "$speed" | awk '{print $6}')
    verifies=$(echo "$speed" | awk '{print $7}')
    sign_ms=$(awk -v s="$sign_s" 'BEGIN{printf "%.3f", s*1000}')
    all+=("$sign_ms")
    echo "openssl speed rsa2048: $signs sign/s ($sign_ms ms per signature, one core), $verifies verify/s"
  done
  SIGN_MS_BEST=$(bench_min "${all[@]}")
  SIGN_MS_MEDIAN=$(bench_median "${all[@]}")
}

# Smallest and median of the numbers given.
bench_min() { printf '%s\n' "$@" | sort -g | head -1; }
bench_median() {
  printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'
}
