#!/usr/bin/env bash
# The cargo-fuzz targets of tests/fuzz (nightly, libFuzzer).
#
#   tests/fuzz/run.sh [run]   build every target, seed its corpus from fixtures/ and
#                             ../shared/corpus, fuzz it FUZZ_SECONDS seconds (default 60), print
#                             executions and coverage per target (target/fuzz/logs/summary.txt)
#   tests/fuzz/run.sh export  replay every corpus once, writing the payloads the targets build
#                             to target/fuzz/wasm/ for the compiled modules (tests/fuzz_wasm.rs)
#   tests/fuzz/run.sh smoke   `make test`: every target FUZZ_SECONDS (default 2) from a fixed
#                             sample of its seeds (FUZZ_SMOKE_SEEDS, default 200) into a scratch
#                             corpus (target/fuzz/smoke/, so a large local corpus does not
#                             lengthen it), then `export` of those inputs
#
# FUZZ_TARGETS="sql shell" limits the targets. Corpora grow in tests/fuzz/corpus/<target>
# (ignored by git); a crash, timeout or out-of-memory input lands in
# tests/fuzz/artifacts/<target>/ and fails the run (after the other targets ran).
set -euo pipefail
cd "$(dirname "$0")/../.."
mode=${1:-run}
fuzz_dir=tests/fuzz
out=target/fuzz
bin=$fuzz_dir/target/x86_64-unknown-linux-gnu/release
corpora=$fuzz_dir/corpus
logs=$out/logs
seconds=${FUZZ_SECONDS:-60}
if [ "$mode" = smoke ]; then
  seconds=${FUZZ_SECONDS:-2}
  smoke_seeds=${FUZZ_SMOKE_SEEDS:-200}
  corpora=$out/smoke/corpus
  logs=$out/smoke/logs
  rm -rf "$out/smoke"
fi

command -v cargo-fuzz >/dev/null || { echo "cargo-fuzz is missing: bash tests/setup.sh" >&2; exit 2; }
# No sanitizer: the code under test is safe Rust; panics, overflow checks (debug assertions are
# on), timeouts and memory are what libFuzzer watches, at twice the speed of ASan builds.
cargo +nightly fuzz build --fuzz-dir "$fuzz_dir" -s none
mapfile -t all < <(cargo +nightly fuzz list --fuzz-dir "$fuzz_dir")
read -r -a targets <<< "${FUZZ_TARGETS:-${all[*]}}"
mkdir -p "$logs" "$out/seeds"

# Inputs up to this size: whole manifests and payloads for the readers and policies,
# less for the small grammars.
max_len() {
  case $1 in
    yaml|fix|evaluate_raw|evaluate|jsonpath) echo 65536 ;;
    quantity|selector) echo 512 ;;
    *) echo 16384 ;;
  esac
}

# The payloads every input of the corpora and seeds builds, for the compiled modules.
export_payloads() {
  rm -rf "$out/wasm"
  for t in "${targets[@]}"; do
    case $t in yaml|fix) continue ;; esac
    mkdir -p "$corpora/$t" "$out/seeds/$t"
    STACKGUARD_FUZZ_EXPORT="$out/wasm" "$bin/$t" -runs=0 -max_len="$(max_len "$t")" \
      "$corpora/$t" "$out/seeds/$t" >"$logs/$t.export.log" 2>&1
  done
  find "$out/wasm" -type f | awk -F/ '{print $(NF-2) "/" $(NF-1)}' | sort | uniq -c
}

if [ "$mode" = export ]; then
  export_payloads
  exit 0
fi

failed=()
printf '%-13s %10s %9s %6s %7s %8s %7s\n' target execs exec/s cov ft corpus rss_mb | tee "$logs/summary.txt"
for t in "${targets[@]}"; do
  rm -rf "$out/seeds/$t"
  STACKGUARD_FUZZ_SEEDS="$out/seeds/$t" "$bin/$t" 2>/dev/null
  if [ "$mode" = smoke ]; then
    # A fixed sample of the seeds (the names are hashes): replaying all 3,000-4,000 corpus
    # manifests would take most of a minute for the slow targets.
    find "$out/seeds/$t" -type f | sort | tail -n +"$((smoke_seeds + 1))" | xargs -r rm -f
  fi
  mkdir -p "$corpora/$t" "$fuzz_dir/artifacts/$t"
  log=$logs/$t.log
  rc=0
  "$bin/$t" "$corpora/$t" "$out/seeds/$t" -max_total_time="$seconds" -timeout=10 \
    -rss_limit_mb=1024 -malloc_limit_mb=1024 -max_len="$(max_len "$t")" -print_final_stats=1 \
    -artifact_prefix="$fuzz_dir/artifacts/$t/" >"$log" 2>&1 || rc=$?
  stat() { sed -n "s/^stat::$1: *//p" "$log" | tail -1; }
  last=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<< "$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<< "$last")
  corpus=$(find "$corpora/$t" -type f | wc -l)
  printf '%-13s %10s %9s %6s %7s %8s %7s\n' "$t" "$(stat number_of_executed_units)" \
    "$(stat average_exec_per_sec)" "${cov:-?}" "${ft:-?}" "$corpus" "$(stat peak_rss_mb)" |
    tee -a "$logs/summary.txt"
  if [ "$rc" -ne 0 ]; then
    failed+=("$t")
    grep -E '^(==[0-9]+== ?ERROR|.*panicked at|SUMMARY|Test unit written|thread .* panicked)' "$log" | head -5 >&2 || true
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: ${failed[*]} failed: see $logs/<target>.log and $fuzz_dir/artifacts/<target>/" >&2
  exit 1
fi
if [ "$mode" = smoke ]; then
  export_payloads
fi
