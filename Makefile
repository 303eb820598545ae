# ferry: the two commands a newcomer runs, `make demo` and `make test`, each doing
# its own set-up. `make bench` prints figures; `make sim SEEDS=N` runs a longer
# simulation.

SHELL := /bin/bash
CARGO ?= cargo
SEEDS ?= 10000
SEED ?= 0

.PHONY: demo test test-native check-core bench sim setup-rust clean

# The Rust toolchain is the machine's (rustup); nothing here downloads a binary.
setup-rust:
	@command -v $(CARGO) >/dev/null || { echo "cargo not found: install Rust with rustup first" >&2; exit 1; }

## The orders scenario, natively on the memory store.
demo: setup-rust
	$(CARGO) run --release --example orders

## Every test: core purity check, unit, property and simulation tests, doc examples.
test: check-core test-native

test-native: setup-rust
	$(CARGO) test --release

# The engine is sans-IO: no JavaScript bindings and no clock in src/core.
check-core:
	@if grep -rnE 'wasm_bindgen|js_sys|web_sys|SystemTime|Instant|std::time|std::thread' src/core; then \
		echo "src/core must stay sans-IO: no JavaScript bindings, no clock, no threads" >&2; exit 1; \
	else echo "src/core: no JavaScript bindings, no clock"; fi

bench: setup-rust
	$(CARGO) bench --bench throughput

## A longer simulation: `make sim SEEDS=100000 SEED=0`.
sim: setup-rust
	FERRY_SIM_SEEDS=$(SEEDS) FERRY_SIM_SEED=$(SEED) $(CARGO) test --release --test simulation -- --nocapture

clean:
	$(CARGO) clean
