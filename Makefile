# stackguard build entry points. `make policies` builds every policy module and writes the
# annotated modules to dist/<name>.wasm; `make test` runs the whole test suite.

POLICIES := run-as-non-root resource-limits pod-anti-affinity no-plaintext-secrets postgres-extensions redis-pubsub-noeviction
CARGO ?= cargo
WASM_DIR := target/wasm32-wasip1/wasm
STACKGUARD := target/release/stackguard
# Binaryen's optimizer (Debian `binaryen`, installed by tests/setup.sh): -Oz takes ~16% off each
# module, which more than pays for the README the modules now embed.
WASM_OPT ?= wasm-opt
# The WebAssembly features rustc enables by default for wasm32-wasip1 (wasmtime supports them).
WASM_FEATURES := --enable-sign-ext --enable-bulk-memory --enable-mutable-globals \
  --enable-nontrapping-float-to-int --enable-reference-types --enable-multivalue

.PHONY: bench bump demo e2e generate setup oracles policies playground push test stackguard clean
.PHONY: fuzz fuzz-smoke fuzz-wasm bench-limits

# The main job: check the bundled reference stack (clean) and a broken example (findings).
demo: stackguard
	@echo "== stackguard check deploy/   (the reference stack: every policy accepts it)"
	$(STACKGUARD) check deploy/
	@echo
	@echo "== stackguard check fixtures/broken-stack/   (a broken stack: every policy finds something)"
	@$(STACKGUARD) check fixtures/broken-stack/; rc=$$?; \
	  if [ $$rc -eq 1 ]; then echo "(exit 1: findings, as expected)"; else echo "unexpected exit $$rc"; exit 1; fi

stackguard:
	$(CARGO) build --release -p stackguard

policies: stackguard
	rustup target add wasm32-wasip1 >/dev/null 2>&1 || true
	$(CARGO) build --profile wasm --target wasm32-wasip1 $(addprefix -p ,$(POLICIES))
	mkdir -p dist target/wasm-opt
	@command -v $(WASM_OPT) >/dev/null || { echo "$(WASM_OPT) is missing: install Debian's binaryen (tests/setup.sh does)"; exit 1; }
	@echo $(POLICIES) | tr ' -' '\n_' | xargs -P 2 -I{} \
	  $(WASM_OPT) -Oz $(WASM_FEATURES) $(WASM_DIR)/{}.wasm -o target/wasm-opt/{}.wasm
	@for p in $(POLICIES); do \
	  m=$$(echo $$p | tr - _); \
	  $(STACKGUARD) annotate target/wasm-opt/$$m.wasm -m policies/$$p/metadata.yml -u policies/$$p/README.md \
	    --strict -o dist/$$p.wasm || exit 1; \
	  printf '%-26s %8d bytes\n' "dist/$$p.wasm" $$(stat -c %s dist/$$p.wasm); \
	done

# The files derived from each policy's settings definition (src/settings.rs), metadata.yml and
# the Cargo version: settings.schema.json, questions-ui.yml, the README settings tables,
# artifacthub-pkg.yml and harness/stackguard.schema.json. `make test` fails when one is stale.
generate: stackguard
	$(STACKGUARD) generate

# Push the six annotated modules: make push REGISTRY=ghcr.io/stackguard/policies TAG=vX.Y.Z
# (credentials from the Docker config; kwctl's sources.yaml marks insecure registries).
push: policies
	@test -n "$(REGISTRY)" -a -n "$(TAG)" || { echo "usage: make push REGISTRY=host/path TAG=vX.Y.Z"; exit 2; }
	@for p in $(POLICIES); do \
	  $(STACKGUARD) push dist/$$p.wasm registry://$(REGISTRY)/$$p:$(TAG) $(PUSH_FLAGS) || exit 1; \
	done

# Set a new release version everywhere (Cargo, metadata, ClusterAdmissionPolicy references,
# CHANGELOG), then regenerate: make bump VERSION=0.2.0
bump: stackguard
	@test -n "$(VERSION)" || { echo "usage: make bump VERSION=X.Y.Z"; exit 2; }
	$(STACKGUARD) bump $(VERSION)
	$(CARGO) build --release -p stackguard
	$(STACKGUARD) generate

# The browser playground: harness/playground/web/ (open index.html, or `stackguard playground`).
playground:
	bash harness/playground/build.sh

setup:
	bash tests/setup.sh

# `stackguard check` on the real-world corpus (../shared/corpus) and a scaled copy: parse-only vs
# native vs modules, objects/s, single-file latency (hyperfine). Results: target/bench/.
bench: policies
	bash tests/bench/corpus.sh

# Fuzzing (tests/fuzz, cargo-fuzz on nightly): `make fuzz FUZZ_SECONDS=N` runs every target N
# seconds, seeded from fixtures/ and ../shared/corpus; crashes land in tests/fuzz/artifacts/.
FUZZ_SECONDS ?= 60
fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) bash tests/fuzz/run.sh

# The short run of every target in `make test` (from the seeds alone, one build of the fuzz
# crate), then the payloads it built for the modules (tests/fuzz_wasm.rs replays a sample of
# them through dist/*.wasm).
FUZZ_SMOKE_SECONDS ?= 2
fuzz-smoke:
	FUZZ_SECONDS=$(FUZZ_SMOKE_SECONDS) bash tests/fuzz/run.sh smoke

# The compiled modules on the whole fuzz corpora (no trap, no host panic, same answers as native).
fuzz-wasm: policies
	bash tests/fuzz/run.sh export
	FUZZ_WASM_ALL=1 $(CARGO) test --release -p stackguard --test fuzz_wasm

# Time and peak memory of every command on every hostile input (tests/limits.rs):
# target/bench/limits.md.
bench-limits: policies
	$(CARGO) build --release -p stackguard -p stackguard-hook
	$(CARGO) test --release -p stackguard --test limits -- --ignored --nocapture bench

# The differential tests against PostgreSQL, Redis and bash with more cases (and any seed):
# `make oracles ORACLE_CASES=2000 ORACLE_SEED=7`.
ORACLE_CASES ?= 1000
oracles: setup
	STACKGUARD_ORACLE_CASES=$(ORACLE_CASES) $(if $(ORACLE_SEED),STACKGUARD_ORACLE_SEED=$(ORACLE_SEED)) \
	  $(CARGO) test --release -p stackguard --test oracle_sql --test oracle_redis --test oracle_shell -- --nocapture

test: setup policies playground fuzz-smoke
	$(CARGO) test --workspace --release
	bash tests/playground.sh
	@echo "note: the live-cluster suite (tests/e2e) was not run: make e2e KUBE_APISERVER=/path/to/kube-apiserver (or E2E_KUBECONFIG=/path/to/kubeconfig)"

# The live-cluster suite: the real stackguard against a real API server (tests/e2e.sh says what
# to set: KUBE_APISERVER or E2E_KUBECONFIG). ARGS picks scenarios by name.
e2e:
	bash tests/e2e.sh $(ARGS)

clean:
	rm -rf dist
	$(CARGO) clean
