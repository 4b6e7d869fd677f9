#!/usr/bin/env bash
# Benchmark `stackguard check` on the real-world manifest corpus (../shared/corpus, never edited)
# and on a scaled copy of it (>= 10,000 objects):
#   parse-only (read + YAML/JSON parse) vs full native check vs check through the waPC modules,
#   objects/second, CPU use (all cores?), and single-file latency (pre-commit) with hyperfine.
# Results: a table on stdout and target/bench/corpus-results.md.
#
#   bash tests/bench/corpus.sh            # CORPUS=/path/to/corpus RUNS=10 to override
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
CORPUS=${CORPUS:-$ROOT/../shared/corpus}
RUNS=${RUNS:-10}
OUT=$ROOT/target/bench
SG=$ROOT/target/release/stackguard
HOOK=$ROOT/target/release/stackguard-hook

[ -d "$CORPUS" ] || { echo "corpus not found: $CORPUS" >&2; exit 2; }
if ! command -v hyperfine >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends hyperfine >/dev/null
fi
cargo build --release -q -p stackguard -p stackguard-hook
[ -f dist/run-as-non-root.wasm ] || make -s policies
mkdir -p "$OUT"
modules=()
for m in dist/*.wasm; do modules+=(--policy "$m"); done

# The scaled copy: the corpus three times over (4,236 objects each).
SCALED=$OUT/scaled
if [ ! -f "$SCALED/.done" ]; then
  rm -rf "$SCALED"
  for i in 1 2 3; do mkdir -p "$SCALED/copy$i" && cp -r "$CORPUS"/. "$SCALED/copy$i/"; done
  touch "$SCALED/.done"
fi

objects() { "$SG" check --parse-only "$1" 2>&1 | sed -n 's/.* \([0-9]*\) objects.*/\1/p' || true; }

bench_set() { # name dir
  local name=$1 dir=$2
  hyperfine -N -i -w 2 -r "$RUNS" --export-json "$OUT/$name.json" \
    -n parse-only "$SG check --parse-only $dir" \
    -n native "$SG check -f json $dir" \
    -n modules "$SG check -f json ${modules[*]} $dir" >/dev/null
}

echo "== corpus: $CORPUS"
bench_set corpus "$CORPUS"
echo "== scaled copy: $SCALED"
bench_set scaled "$SCALED"
# Module compilation is cached on disk: the runs above are warm. One cold run for reference.
cold_cache=$(mktemp -d)
cold=$( { /usr/bin/time -f %e env XDG_CACHE_HOME="$cold_cache" "$SG" check -f json "${modules[@]}" tests/data/cli/good.yaml >/dev/null || true; } 2>&1 | tail -1)
rm -rf "$cold_cache"

echo "== single file (pre-commit latency)"
hyperfine -N -i -w 5 -r 50 --export-json "$OUT/single.json" \
  -n stackguard "$SG check tests/data/cli/bad.yaml" \
  -n stackguard-hook "$HOOK tests/data/cli/bad.yaml" >/dev/null

# CPU use of a native check of the scaled copy: (user+sys)/elapsed, 2.0 = both cores busy.
cpu=$( { /usr/bin/time -f "%U %S %e" "$SG" check -f json "$SCALED" >/dev/null || true; } 2>&1 | tail -1)

python3 - "$OUT" "$(objects "$CORPUS")" "$(objects "$SCALED")" "$cpu" "$cold" "$(nproc)" <<'PY'
import json, sys, os
out, n_corpus, n_scaled, cpu, cold, cores = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6]
def load(name):
    return {r["command"]: r for r in json.load(open(os.path.join(out, name + ".json")))["results"]}
lines = ["| set | objects | parse-only | native check | ratio (wall) | ratio (CPU) | native objects/s | modules check | modules objects/s |",
         "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
cpu_of = lambda r: r["user"] + r["system"]
for name, n in (("corpus", n_corpus), ("scaled", n_scaled)):
    r = load(name)
    p, nat, mod = (r[k]["mean"] for k in ("parse-only", "native", "modules"))
    cpu_ratio = cpu_of(r["native"]) / cpu_of(r["parse-only"])
    lines.append(f"| {name} | {n} | {p*1000:.0f} ms | {nat*1000:.0f} ms | {nat/p:.2f}× | {cpu_ratio:.2f}× | {n/nat:,.0f} | {mod*1000:.0f} ms | {n/mod:,.0f} |")
s = load("single")
lines.append("")
lines.append("| single-file check (pre-commit) | mean | σ | min |")
lines.append("|---|---:|---:|---:|")
for k in ("stackguard", "stackguard-hook"):
    lines.append(f"| {k} | {s[k]['mean']*1000:.1f} ms | {s[k]['stddev']*1000:.1f} ms | {s[k]['min']*1000:.1f} ms |")
u, sy, e = (float(x) for x in cpu.split())
lines.append("")
lines.append(f"CPU use, native check of the scaled copy: {(u+sy)/e:.2f} cores busy of {cores} (user {u:.2f} s + sys {sy:.2f} s over {e:.2f} s).")
lines.append(f"Module check of one file with a cold compilation cache: {float(cold)*1000:.0f} ms (then cached on disk).")
load_avg = open("/proc/loadavg").read().split()[:3]
lines.append(f"Load average while measuring: {' '.join(load_avg)} (other builds share the 2 cores).")
text = "\n".join(lines)
print(text)
open(os.path.join(out, "corpus-results.md"), "w").write(text + "\n")
PY
