# Shared by the benchmark scripts (sourced): release build, a dev realm in a
# temporary directory, its provisioning-server stand-in and the KDC, a
# bounded readiness wait, and cleanup on exit.

bench_build() {
  echo "== building (release)" >&2
  # BENCH_FEATURES, e.g. kdc/vendored-openssl (with its own CARGO_TARGET_DIR).
  cargo build --release --quiet -p kdc -p eue-sim ${BENCH_FEATURES:+--features "$BENCH_FEATURES"}
  local target_dir
  target_dir=$(cargo metadata --format-version 1 --no-deps 2>/dev/null |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
  target_dir=${target_dir:-target}
  KDC_BIN="$target_dir/release/pktc-kdc"
  SIM_BIN="$target_dir/release/eue-sim"
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
  RUST_LOG=$KDC_LOG "$KDC_BIN" serve --config "$work/realm/config.toml" >"$work/kdc.log" 2>&1 &
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

# `openssl speed rsa2048` on one core; prints the per-signature cost.
# Run before the server starts, so nothing else competes for the CPU.
bench_openssl_speed() {
  local seconds=$1 speed sign_s signs verifies sign_ms
  echo "== openssl speed -seconds $seconds rsa2048 ($(openssl version))" >&2
  speed=$(openssl speed -seconds "$seconds" rsa2048 2>/dev/null | grep -E '^rsa +2048' | tail -1)
  # "rsa 2048 bits 0.000712s 0.000021s 1404.2 47619.0" (sign s, verify s, sign/s, verify/s)
  sign_s=$(echo "$speed" | awk '{print $4}' | tr -d s)
  signs=$(echo "$speed" | awk '{print $6}')
  verifies=$(echo "$speed" | awk '{print $7}')
  sign_ms=$(awk -v s="$sign_s" 'BEGIN{printf "%.3f", s*1000}')
  echo "openssl speed rsa2048: $signs sign/s ($sign_ms ms per signature, one core), $verifies verify/s"
}
