# stackguard build entry points. `make policies` builds every policy module and writes the
# annotated modules to dist/<name>.wasm; `make test` runs the whole test suite.

POLICIES := run-as-non-root resource-limits pod-anti-affinity no-plaintext-secrets postgres-extensions redis-pubsub-noeviction
CARGO ?= cargo
WASM_DIR := target/wasm32-wasip1/wasm
STACKGUARD := target/release/stackguard

.PHONY: bench demo setup policies playground test stackguard clean fuzz fuzz-smoke fuzz-wasm bench-limits

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
	mkdir -p dist
	@for p in $(POLICIES); do \
	  m=$$(echo $$p | tr - _); \
	  $(STACKGUARD) annotate $(WASM_DIR)/$$m.wasm -m policies/$$p/metadata.yml -o dist/$$p.wasm || exit 1; \
	  printf '%-26s %8d bytes\n' "dist/$$p.wasm" $$(stat -c %s dist/$$p.wasm); \
	done

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

# The short run of every target in `make test`, then the payloads it built for the modules
# (tests/fuzz_wasm.rs replays a sample of them through dist/*.wasm).
FUZZ_SMOKE_SECONDS ?= 8
fuzz-smoke:
	FUZZ_SECONDS=$(FUZZ_SMOKE_SECONDS) bash tests/fuzz/run.sh
	bash tests/fuzz/run.sh export

# The compiled modules on the whole fuzz corpora (no trap, no host panic, same answers as native).
fuzz-wasm: policies
	bash tests/fuzz/run.sh export
	FUZZ_WASM_ALL=1 $(CARGO) test --release -p stackguard --test fuzz_wasm

# Time and peak memory of every command on every hostile input (tests/limits.rs):
# target/bench/limits.md.
bench-limits: policies
	$(CARGO) build --release -p stackguard -p stackguard-hook
	$(CARGO) test --release -p stackguard --test limits -- --ignored --nocapture bench

test: setup policies playground fuzz-smoke
	$(CARGO) test --workspace --release
	bash tests/playground.sh

clean:
	rm -rf dist
	$(CARGO) clean
