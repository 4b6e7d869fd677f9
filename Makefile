# stackguard build entry points. `make policies` builds every policy module and writes the
# annotated modules to dist/<name>.wasm; `make test` runs the whole test suite.

POLICIES := run-as-non-root resource-limits pod-anti-affinity no-plaintext-secrets postgres-extensions redis-pubsub-noeviction
CARGO ?= cargo
WASM_DIR := target/wasm32-wasip1/wasm
STACKGUARD := target/release/stackguard

.PHONY: bench demo setup oracles policies playground test stackguard clean

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

# The differential tests against PostgreSQL, Redis and bash with more cases (and any seed):
# `make oracles ORACLE_CASES=2000 ORACLE_SEED=7`.
ORACLE_CASES ?= 1000
oracles: setup
	STACKGUARD_ORACLE_CASES=$(ORACLE_CASES) $(if $(ORACLE_SEED),STACKGUARD_ORACLE_SEED=$(ORACLE_SEED)) \
	  $(CARGO) test --release -p stackguard --test oracle_sql --test oracle_redis --test oracle_shell -- --nocapture

test: setup policies playground
	$(CARGO) test --workspace --release
	bash tests/playground.sh

clean:
	rm -rf dist
	$(CARGO) clean
