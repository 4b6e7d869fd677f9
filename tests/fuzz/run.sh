#!/usr/bin/env bash
# The cargo-fuzz targets of tests/fuzz (nightly, libFuzzer).
#
#   tests/fuzz/run.sh [run]   build every target, seed its corpus from fixtures/ and
#                             ../shared/corpus, fuzz it FUZZ_SECONDS seconds (default 60), print
#                             executions and coverage per target (target/fuzz/summary.txt)
#   tests/fuzz/run.sh export  replay every corpus once, writing the payloads the targets build
#                             to target/fuzz/wasm/ for the compiled modules (tests/fuzz_wasm.rs)
#
# FUZZ_TARGETS="sql shell" limits the targets. Corpora grow in tests/fuzz/corpus/<target>
# (ignored by git); a crash, timeout or out-of-memory input lands in
# tests/fuzz/artifacts/<target>/ and fails the run (after the other targets ran).
set -euo pipefail
cd "$(dirname "$0")/../.."
mode=${1:-run}
seconds=${FUZZ_SECONDS:-60}
fuzz_dir=tests/fuzz
out=target/fuzz
bin=$fuzz_dir/target/x86_64-unknown-linux-gnu/release

command -v cargo-fuzz >/dev/null || { echo "cargo-fuzz is missing: bash tests/setup.sh" >&2; exit 2; }
# No sanitizer: the code under test is safe Rust; panics, overflow checks (debug assertions are
# on), timeouts and memory are what libFuzzer watches, at twice the speed of ASan builds.
cargo +nightly fuzz build --fuzz-dir "$fuzz_dir" -s none
mapfile -t all < <(cargo +nightly fuzz list --fuzz-dir "$fuzz_dir")
read -r -a targets <<< "${FUZZ_TARGETS:-${all[*]}}"
mkdir -p "$out/logs" "$out/seeds"

# Inputs up to this size: whole manifests and payloads for the readers and policies,
# less for the small grammars.
max_len() {
  case $1 in
    yaml|evaluate_raw|evaluate|jsonpath) echo 65536 ;;
    quantity|selector) echo 512 ;;
    *) echo 16384 ;;
  esac
}

if [ "$mode" = export ]; then
  rm -rf "$out/wasm"
  for t in "${targets[@]}"; do
    [ "$t" = yaml ] && continue
    mkdir -p "$fuzz_dir/corpus/$t"
    STACKGUARD_FUZZ_EXPORT="$out/wasm" "$bin/$t" -runs=0 -max_len="$(max_len "$t")" \
      "$fuzz_dir/corpus/$t" "$out/seeds/$t" >"$out/logs/$t.export.log" 2>&1
  done
  find "$out/wasm" -type f | awk -F/ '{print $(NF-2) "/" $(NF-1)}' | sort | uniq -c
  exit 0
fi

failed=()
printf '%-13s %10s %9s %6s %7s %8s %7s\n' target execs exec/s cov ft corpus rss_mb | tee "$out/summary.txt"
for t in "${targets[@]}"; do
  rm -rf "$out/seeds/$t"
  STACKGUARD_FUZZ_SEEDS="$out/seeds/$t" "$bin/$t" 2>/dev/null
  mkdir -p "$fuzz_dir/corpus/$t" "$fuzz_dir/artifacts/$t"
  log=$out/logs/$t.log
  rc=0
  "$bin/$t" "$fuzz_dir/corpus/$t" "$out/seeds/$t" -max_total_time="$seconds" -timeout=10 \
    -rss_limit_mb=1024 -malloc_limit_mb=1024 -max_len="$(max_len "$t")" -print_final_stats=1 \
    -artifact_prefix="$fuzz_dir/artifacts/$t/" >"$log" 2>&1 || rc=$?
  stat() { sed -n "s/^stat::$1: *//p" "$log" | tail -1; }
  last=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<< "$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<< "$last")
  corpus=$(find "$fuzz_dir/corpus/$t" -type f | wc -l)
  printf '%-13s %10s %9s %6s %7s %8s %7s\n' "$t" "$(stat number_of_executed_units)" \
    "$(stat average_exec_per_sec)" "${cov:-?}" "${ft:-?}" "$corpus" "$(stat peak_rss_mb)" |
    tee -a "$out/summary.txt"
  if [ "$rc" -ne 0 ]; then
    failed+=("$t")
    grep -E '^(==[0-9]+== ?ERROR|.*panicked at|SUMMARY|Test unit written|thread .* panicked)' "$log" | head -5 >&2 || true
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: ${failed[*]} failed: see $out/logs/<target>.log and $fuzz_dir/artifacts/<target>/" >&2
  exit 1
fi
