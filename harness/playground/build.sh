#!/usr/bin/env bash
# `make playground`: build the playground engine (the stackguard check engine for
# wasm32-unknown-unknown), bind it with wasm-bindgen (classic-script glue, so the page also works
# from file://), then generate the inlined module and the examples (build.mjs).
# Output: harness/playground/web/pkg/ (ignored by git). Prints the module's size, raw and gzip.
set -euo pipefail
cd "$(dirname "$0")/../.."
CARGO=${CARGO:-cargo}
PKG=harness/playground/web/pkg

rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
command -v wasm-bindgen >/dev/null || { echo "wasm-bindgen-cli is missing: bash tests/setup.sh" >&2; exit 2; }

# strip=false keeps the target_features section wasm-bindgen reads; wasm-bindgen then removes
# the name and producers sections itself.
CARGO_PROFILE_WASM_STRIP=false "$CARGO" build --profile wasm --target wasm32-unknown-unknown \
  -p stackguard-playground
rm -rf "$PKG"
wasm-bindgen --target no-modules --no-typescript --remove-name-section --remove-producers-section \
  --out-dir "$PKG" target/wasm32-unknown-unknown/wasm/stackguard_playground.wasm
node harness/playground/build.mjs
wasm=$PKG/stackguard_playground_bg.wasm
printf 'playground: module %d bytes, %d bytes gzip -9\n' "$(stat -c %s "$wasm")" "$(gzip -9c "$wasm" | wc -c)"
