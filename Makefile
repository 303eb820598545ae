# ferry: the two commands a newcomer runs, `make demo` and `make test`, each doing
# its own set-up. `make bench` prints figures; `make sim SEEDS=N` runs a longer
# simulation; `make pkg` builds the npm package into pkg/dist.

SHELL := /bin/bash
CARGO ?= cargo
SEEDS ?= 10000
SEED ?= 0
# Must equal the wasm-bindgen crate version in Cargo.toml exactly.
WASM_BINDGEN_VERSION := 0.2.130
WASM_TARGET := wasm32-unknown-unknown
WASM_OPT := node_modules/.bin/wasm-opt -Oz --enable-bulk-memory --enable-nontrapping-float-to-int \
	--enable-reference-types --enable-multivalue --enable-sign-ext

.PHONY: demo test test-native test-wasm test-js check-core lint bench sim pkg size setup-rust setup-wasm setup-npm setup-browser clean

# The Rust toolchain is the machine's (rustup); nothing here downloads a binary.
setup-rust:
	@command -v $(CARGO) >/dev/null || { echo "cargo not found: install Rust with rustup first" >&2; exit 1; }

# The wasm target and the wasm-bindgen CLI, built from crates.io when missing.
setup-wasm: setup-rust
	@rustup target list --installed | grep -qx $(WASM_TARGET) || rustup target add $(WASM_TARGET)
	@if [ "$$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen $(WASM_BINDGEN_VERSION)" ]; then \
		echo "installing wasm-bindgen-cli $(WASM_BINDGEN_VERSION) (a few minutes)"; \
		$(CARGO) install wasm-bindgen-cli --version $(WASM_BINDGEN_VERSION) --locked \
		|| $(CARGO) install wasm-bindgen-cli --version $(WASM_BINDGEN_VERSION); \
	fi

# npm tools (wasm-opt from binaryen) and the package linked as `ferry` for the tests.
setup-npm: node_modules/.package-lock.json

node_modules/.package-lock.json: package.json
	@command -v npm >/dev/null || { echo "npm not found: install Node.js >= 20 first" >&2; exit 1; }
	npm install --no-audit --no-fund

# Debian's Chromium and Firefox ESR for the browser tests (playwright-core drives
# Chromium, puppeteer-core Firefox; neither ever downloads a browser of its own).
setup-browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { apt-get update && apt-get install -y chromium chromium-driver; }
	@command -v firefox-esr >/dev/null || { apt-get update && apt-get install -y firefox-esr; }

## The orders demo in the browser: builds the package, serves www/ on 127.0.0.1
## and prints where to look. (`cargo run --example orders` runs it natively.)
demo: pkg
	node www/serve.mjs $(or $(PORT),8080)

## The npm package: wasm engine + JavaScript glue in pkg/dist, in four builds, so
## that pages download only what they use:
## - `ferry`'s for pages and workers (`--no-default-features`), in pkg/dist: a
##   client of the bus's writer, without the engine, the bridge and `Bus.remote`;
## - the engine (feature `engine`, no job queues), in pkg/dist/engine: the
##   SharedWorker that writes a bus, Node and workerd run it, and a page loads it
##   only once it must write itself, or bridges, or calls `Bus.remote`;
## - `ferry/bullmq`'s (with the job queues, feature `jobs`), in pkg/dist/jobs;
## - `ferry/workers`' (feature `edge`), in pkg/dist/edge.
## Each build's files have names of their own (ferry_engine*, ferry_jobs*,
## ferry_edge*), since bundlers such as wrangler name wasm modules by file.
pkg: setup-wasm setup-npm
	$(CARGO) build --target $(WASM_TARGET) --profile wasm --no-default-features
	wasm-bindgen --target web --out-dir pkg/dist --out-name ferry target/$(WASM_TARGET)/wasm/ferry.wasm
	@# Kept with its names for `make size`'s profile; the shipped one has none.
	cp pkg/dist/ferry_bg.wasm target/ferry_bg.named.wasm
	$(WASM_OPT) pkg/dist/ferry_bg.wasm -o pkg/dist/ferry_bg.wasm
	$(CARGO) build --target $(WASM_TARGET) --profile wasm --no-default-features --features engine
	wasm-bindgen --target web --out-dir pkg/dist/engine --out-name ferry_engine target/$(WASM_TARGET)/wasm/ferry.wasm
	$(WASM_OPT) pkg/dist/engine/ferry_engine_bg.wasm -o pkg/dist/engine/ferry_engine_bg.wasm
	$(CARGO) build --target $(WASM_TARGET) --profile wasm
	wasm-bindgen --target web --out-dir pkg/dist/jobs --out-name ferry_jobs target/$(WASM_TARGET)/wasm/ferry.wasm
	$(WASM_OPT) pkg/dist/jobs/ferry_jobs_bg.wasm -o pkg/dist/jobs/ferry_jobs_bg.wasm
	$(CARGO) build --target $(WASM_TARGET) --profile wasm --features edge
	wasm-bindgen --target web --out-dir pkg/dist/edge --out-name ferry_edge target/$(WASM_TARGET)/wasm/ferry.wasm
	$(WASM_OPT) pkg/dist/edge/ferry_edge_bg.wasm -o pkg/dist/edge/ferry_edge_bg.wasm
	@node tools/size-report.mjs

## What the package costs an app (`make pkg`'s sizes) and where the browser wasm's
## bytes go: its name-section profile by kind, by module and by function.
size: pkg
	node tools/size-report.mjs --profile

## Every test: core purity check, unit, property and simulation tests, doc
## examples, the IndexedDB store in Chromium, and the JavaScript tests.
test: check-core lint test-native test-wasm test-js

# The engine's own tests run twice: with the job queues, and as the browser's `ferry`
# build has it, without them (--no-default-features).
test-native: setup-rust
	$(CARGO) test --release
	$(CARGO) test --release --no-default-features --lib

# Under wasm-bindgen-test: the IndexedDB store in headless Chromium (webdriver.json
# holds the browser flags), and the wasm builds' allocator (src/heap.rs) in Node.
test-wasm: setup-wasm setup-browser
	CHROMEDRIVER=$$(command -v chromedriver) $(CARGO) test --target $(WASM_TARGET) --release --test indexeddb --test heap

test-js: pkg setup-browser
	node_modules/.bin/tsc -p tests/types/tsconfig.json
	node --test tests/js/

# Formatting (rustfmt.toml) and clippy with every warning an error, for the native
# build with its tests and for each WebAssembly build (`make pkg`'s four).
lint: setup-wasm
	@$(CARGO) fmt --version >/dev/null 2>&1 || rustup component add rustfmt
	@$(CARGO) clippy --version >/dev/null 2>&1 || rustup component add clippy
	$(CARGO) fmt --check
	$(CARGO) clippy --release --all-targets -- -D warnings
	$(CARGO) clippy --release --target $(WASM_TARGET) --no-default-features -- -D warnings
	$(CARGO) clippy --release --target $(WASM_TARGET) --no-default-features --features engine -- -D warnings
	$(CARGO) clippy --release --target $(WASM_TARGET) -- -D warnings
	$(CARGO) clippy --release --target $(WASM_TARGET) --features edge -- -D warnings

# The engine is sans-IO: no JavaScript bindings and no clock in src/core.
check-core:
	@if grep -rnE 'wasm_bindgen|js_sys|web_sys|SystemTime|Instant|std::time|std::thread' src/core; then \
		echo "src/core must stay sans-IO: no JavaScript bindings, no clock, no threads" >&2; exit 1; \
	else echo "src/core: no JavaScript bindings, no clock"; fi

bench: pkg setup-browser
	$(CARGO) bench --bench throughput
	node benches/browser.mjs
	node benches/contexts.mjs
	node benches/workers.mjs
	node benches/bridge.mjs
	node benches/bullmq.mjs
	node benches/startup.mjs

## A longer simulation: `make sim SEEDS=100000 SEED=0`.
sim: setup-rust
	FERRY_SIM_SEEDS=$(SEEDS) FERRY_SIM_SEED=$(SEED) $(CARGO) test --release --test simulation -- --nocapture

clean:
	$(CARGO) clean
	rm -rf pkg/dist node_modules
