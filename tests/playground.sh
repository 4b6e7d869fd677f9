#!/usr/bin/env bash
# Browser test of the playground (issue 6), run by `make test`: the wasm module must equal
# `stackguard check --format json` on every fixture, and the page must work in Debian's headless
# chromium, served by `stackguard playground` and opened from disk. Screenshots and measurements:
# target/playground/. Needs `make stackguard playground` and tests/setup.sh (chromium, node,
# playwright-core).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x target/release/stackguard ] || { echo "playground test: build the CLI first (make stackguard)" >&2; exit 2; }
[ -f harness/playground/web/pkg/wasm_inline.js ] || { echo "playground test: build the page first (make playground)" >&2; exit 2; }
[ -d harness/playground/node_modules/playwright-core ] || { echo "playground test: run tests/setup.sh (playwright-core)" >&2; exit 2; }
exec node tests/playground.mjs
