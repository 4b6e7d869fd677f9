#!/usr/bin/env bash
# Time and peak memory of `stackguard check` and `stackguard-hook` on the hostile YAML files
# of tests/yaml/hostile.py (alias bomb and fan-out, deep nesting, huge scalars, 50,000
# documents, 16 MiB files), measured with GNU time (wall clock, maximum resident set size).
# The target (issue 11): every file up to 16 MiB in under 2 s and 256 MB, or the bad document
# reported. Results: a table on stdout and target/bench/yaml-hostile.md.
#
#   bash tests/bench/yaml_hostile.sh          # RUNS=3 (the worst run of each is reported)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
RUNS=${RUNS:-3}
OUT=$ROOT/target/bench
DIR=$OUT/yaml-hostile
SG=$ROOT/target/release/stackguard
HOOK=$ROOT/target/release/stackguard-hook

if [ ! -x /usr/bin/time ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends time >/dev/null
fi
cargo build --release -q -p stackguard -p stackguard-hook
mkdir -p "$DIR"
python3 tests/yaml/hostile.py "$DIR"

table=$OUT/yaml-hostile.md
{
  echo "| file | size | binary | worst wall time | worst CPU time | worst peak RSS | exit | errors reported |"
  echo "|---|---:|---|---:|---:|---:|---:|---|"
} >"$table"
for f in "$DIR"/*.yaml; do
  name=$(basename "$f")
  size=$(stat -c %s "$f")
  for bin in "$SG check" "$HOOK"; do
    worst_s=0 worst_cpu=0 worst_kb=0 code=0
    for _ in $(seq "$RUNS"); do
      set +e
      /usr/bin/time -f '%e %U %S %M' -o "$OUT/time.txt" $bin --format json "$f" >"$OUT/report.json" 2>/dev/null
      code=$?
      set -e
      read -r s user sys kb < <(tail -n 1 "$OUT/time.txt")
      worst_s=$(python3 -c "print(max($worst_s, $s))")
      worst_cpu=$(python3 -c "print(max($worst_cpu, $user + $sys))")
      [ "$kb" -gt "$worst_kb" ] && worst_kb=$kb
    done
    errors=$(python3 -c "import json,sys; r=json.load(open('$OUT/report.json')); print('; '.join('line %s: %s' % (e['line'], e['message'][:70]) for e in r['errors']) or '-')")
    printf '| %s | %.1f MB | %s | %.2f s | %.2f s | %d MB | %d | %s |\n' "$name" "$(python3 -c "print($size/1e6)")" \
      "$(basename "${bin%% *}")" "$worst_s" "$worst_cpu" $((worst_kb / 1024)) "$code" "$errors" >>"$table"
  done
done
echo "load average while measuring: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores" >>"$table"
cat "$table"
